"""The one way files are replaced: readers, and a process killed at any moment, see old or new."""

from __future__ import annotations

import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from clipsearch.atomic import remove_stale_temps, replacing, write_atomically


def test_write_replaces_the_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "marks.json"
    target.write_bytes(b"old")
    write_atomically(target, b"new")
    assert target.read_bytes() == b"new"
    write_atomically(target, b"newer", durable=False, mode=0o644)
    assert target.read_bytes() == b"newer"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["marks.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "vectors.faiss"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), replacing(target) as fh:
        fh.write(b"half of the new")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors.faiss"]


def test_a_killed_writers_temp_is_swept_and_a_live_writers_is_kept(tmp_path):
    target = tmp_path / "vectors.faiss"
    target.write_bytes(b"old")
    code = textwrap.dedent(f"""
        import sys, time
        from clipsearch.atomic import replacing
        with replacing({str(target)!r}) as fh:
            fh.write(b"half of the new")
            fh.flush()
            print("writing", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        [temp] = [p for p in tmp_path.iterdir() if p != target]
        remove_stale_temps(target)  # its writer is alive: a write in progress
        assert temp.read_bytes() == b"half of the new"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert target.read_bytes() == b"old" and temp.exists()
    remove_stale_temps(target)  # its writer died, and with it the lock
    assert not temp.exists() and target.read_bytes() == b"old"
