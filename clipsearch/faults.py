"""Fault injection: kill this process at a named point of its work, for crash tests.

`CLIPSEARCH_FAULT=NAME[:N]` sends SIGKILL to the process the Nth time (default: the first) it
passes the point NAME, so a test can stop a run exactly between two steps instead of guessing
with sleeps; with `CLIPSEARCH_FAULT_SIGNAL=STOP` it sends SIGSTOP instead, so a test can look at
the state the run left there and let it go on (SIGCONT). `CLIPSEARCH_FAULT_TRACE=FILE` appends
the name of every point passed to FILE (the kill campaign reads the last line as the phase a
random kill hit). With neither variable set, as
in normal use, a point costs one environment lookup; points sit at batch and file boundaries,
never in per-image loops.

Points: planned, thumbnail-saved, batch-committed, swept, index-temp-written, index-saved, schema-migrated.
"""

from __future__ import annotations

import os
import signal
import threading

_counts: dict[str, int] = {}
_lock = threading.Lock()


def point(name: str) -> None:
    """Mark that the work reached `name`; die here if a fault is armed for this passage."""
    armed = os.environ.get("CLIPSEARCH_FAULT")
    trace = os.environ.get("CLIPSEARCH_FAULT_TRACE")
    if not armed and not trace:
        return
    with _lock:
        _counts[name] = count = _counts.get(name, 0) + 1
        if trace:
            with open(trace, "a", encoding="utf-8") as fh:
                fh.write(f"{name}\n")
    if armed:
        want, _, nth = armed.partition(":")
        if want == name and count == int(nth or 1):
            stop = os.environ.get("CLIPSEARCH_FAULT_SIGNAL") == "STOP"
            os.kill(os.getpid(), signal.SIGSTOP if stop else signal.SIGKILL)
