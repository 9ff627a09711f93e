"""The `clipsearch` executable and `python -m clipsearch`.

Kept apart from ``clipsearch.cli`` so that the CLI's own imports run inside the Ctrl-C
handling: an interrupt during start-up says "interrupted" (status 130) like one during a
command, instead of a traceback.
"""

from __future__ import annotations

import os
import signal
import sys


def main() -> None:
    try:
        from clipsearch.cli import run

        code = run()
    except KeyboardInterrupt:  # while importing the CLI, or between click's handlers
        sys.stderr.write("interrupted\n")
        code = 130
    # From here on Python only shuts down (thread joins, flushes): a Ctrl-C then ends the process
    # at once with the same message instead of an "Exception ignored in ..." traceback.
    signal.signal(signal.SIGINT, _exit_interrupted)
    sys.exit(code)


def _exit_interrupted(_signum, _frame) -> None:
    try:
        sys.stdout.flush()
    finally:
        os.write(2, b"interrupted\n")
        os._exit(130)


if __name__ == "__main__":
    main()
