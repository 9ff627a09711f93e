#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server on loopback for the test suite and prints the URL
# to export as CLIPSEARCH_TEST_DATABASE_URL. Installs Debian's postgresql when missing.
set -euo pipefail
PORT=${CLIPSEARCH_PG_PORT:-54329}
DATA=${CLIPSEARCH_PG_DIR:-/tmp/clipsearch-pg}
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
RUN=()
if [ "$(id -u)" = 0 ]; then RUN=(runuser -u postgres --); fi
if ! "${RUN[@]}" "$BIN/pg_ctl" -D "$DATA/data" status >/dev/null 2>&1; then
    rm -rf "$DATA"; mkdir -p "$DATA"
    [ "$(id -u)" = 0 ] && chown postgres "$DATA"
    "${RUN[@]}" "$BIN/initdb" -D "$DATA/data" -A trust -U postgres >/dev/null
    "${RUN[@]}" "$BIN/pg_ctl" -D "$DATA/data" -l "$DATA/server.log" -w \
        -o "-p $PORT -k $DATA -c listen_addresses=127.0.0.1 -c fsync=off" start >&2
fi
"${RUN[@]}" "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='clipsearch_test'" | grep -q 1 \
    || "${RUN[@]}" "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres clipsearch_test
echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/clipsearch_test"
