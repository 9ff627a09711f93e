"""Start-up of the real `clipsearch` process: what each command imports, and Ctrl-C at any moment.

Commands that never run a model (help, status, db, re-indexing an unchanged folder) and
queries (on the ONNX runtime) must not import torch, open_clip or streamlit: the test runs
the CLI in a subprocess and reads its ``sys.modules`` at exit. Ctrl-C is sent to the real
process at moments found from its own ``-X importtime`` trace (while it is still importing),
and must end it with "interrupted" and status 130, never a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clipsearch.models import bundled_models
from clipsearch.synthetic.corpus import generate_corpus

HEAVY = ("torch", "open_clip", "streamlit")
# The real entry point, with its modules written to stderr when the process exits.
PROBE = (
    "import atexit, json, sys\n"
    "atexit.register(lambda: sys.stderr.write('MODULES ' + json.dumps(sorted(sys.modules)) + '\\n'))\n"
    "sys.argv = ['clipsearch', *sys.argv[1:]]\n"
    "from clipsearch.__main__ import main\n"
    "main()\n"
)


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPSEARCH_") and k != "DATABASE_URL"}
    return env | {"CLIPSEARCH_HOME": str(home), "HF_HUB_OFFLINE": "1"}


def _cli(home: Path, *args, probe: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
    start = [sys.executable, "-c", PROBE] if probe else [sys.executable, "-m", "clipsearch"]
    return subprocess.run([*start, *map(str, args)], env=_env(home), capture_output=True, text=True, timeout=timeout)


def _heavy_modules(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 0, result.stderr
    line = next(li for li in result.stderr.splitlines() if li.startswith("MODULES "))
    modules = json.loads(line.removeprefix("MODULES "))
    return [m for m in modules if m.split(".")[0] in HEAVY]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, Path]:
    """A store indexed with the bundled model: (home, photos)."""
    root = tmp_path_factory.mktemp("startup")
    photos = root / "photos"
    generate_corpus(photos, 12, seed=5, split="heldout", size=64)
    home = root / "home"
    result = _cli(home, "index", photos, "--model", bundled_models()[0])
    assert result.returncode == 0, result.stderr
    return home, photos


@pytest.mark.parametrize(
    "args",
    [["--help"], ["status", "--json", "--failures"], ["db", "current"], ["db", "upgrade"], ["index"]],
    ids=lambda a: " ".join(a),
)
def test_commands_without_a_model_import_no_torch(store, args):
    home, photos = store
    if args == ["index"]:
        args = ["index", photos]  # an unchanged folder: nothing to embed, no model loaded
    result = _cli(home, *args, probe=True)
    assert _heavy_modules(result) == []
    if args[0] == "index":
        assert "0 new" in result.stdout and "12 unchanged" in result.stdout


QUERIES = {
    "text": ["a red circle"],
    "image": ["--image", "{photo}"],
    "text+image": ["a red circle", "--image", "{photo}"],
    "filters": ["a red circle", "--folder", "{photos}", "--min-score", "-1", "--after", "2000-01-01", "-k", "3"],
}


@pytest.mark.xfail(reason="queries load the torch runtime until helper onnx's ONNX Runtime backend is on main (#17)")
@pytest.mark.parametrize("kind", list(QUERIES))
def test_queries_import_no_torch(store, kind):
    home, photos = store
    photo = sorted(photos.glob("*.png"))[0]
    args = [a.format(photo=photo, photos=photos) for a in QUERIES[kind]]
    result = _cli(home, "query", *args, "--json", probe=True)
    assert _heavy_modules(result) == []
    assert json.loads(result.stdout), "no results"


def _interrupt_when(home: Path, args: list, marker: str, delay: float = 0.0) -> subprocess.CompletedProcess:
    """Run the CLI, send SIGINT once it has imported `marker` (+ delay seconds); its result."""
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "clipsearch", *map(str, args)],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("import time:") and line.rsplit("|", 1)[-1].strip() == marker:
                time.sleep(delay)
                proc.send_signal(signal.SIGINT)
                break
        else:
            raise AssertionError(f"{marker} was never imported:\n{''.join(lines[-20:])}")
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "".join(lines) + err)


# Moments across start-up: importing the CLI (typer), building the commands (pydantic, under
# typer), opening the store (SQLAlchemy, FAISS), and with a delay the model and the search.
MOMENTS = [
    (["--help"], "typer", 0.0),
    (["status"], "pydantic.main", 0.0),
    (["status"], "sqlalchemy.orm", 0.0),
    (["query", "a red circle"], "typer", 0.0),
    (["query", "a red circle"], "PIL.Image", 0.0),
    (["query", "a red circle"], "sqlalchemy.sql", 0.0),
    (["query", "a red circle"], "faiss", 0.0),
    (["query", "a red circle"], "faiss", 0.3),
]


@pytest.mark.parametrize("args,marker,delay", MOMENTS, ids=lambda v: str(v).replace(" ", "_"))
def test_ctrl_c_at_start_up_says_interrupted(store, args, marker, delay):
    home, _photos = store
    result = _interrupt_when(home, args, marker, delay)
    said = [li for li in result.stderr.splitlines() if li.strip() and not li.startswith("import time:")]
    if result.returncode == 0:  # the command finished before the signal landed (only with a delay)
        assert delay > 0 and "Traceback" not in result.stderr
        return
    assert result.returncode == 130, result.stderr[-3000:]
    assert said and said[-1] == "interrupted", said
    assert not any("Traceback" in li or "Exception ignored" in li for li in said), said


def test_the_installed_executable_handles_ctrl_c(store):
    """The console script itself (not `python -m`): interrupted while it imports the CLI."""
    home, _photos = store
    script = Path(sys.executable).with_name("clipsearch")
    proc = subprocess.Popen(
        [str(script), "status"],
        env=_env(home) | {"PYTHONPROFILEIMPORTTIME": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stderr:
        if line.rsplit("|", 1)[-1].strip() == "typer":
            proc.send_signal(signal.SIGINT)
            break
    _out, err = proc.communicate(timeout=120)
    said = [li for li in err.splitlines() if li.strip() and not li.startswith("import time:")]
    assert proc.returncode == 130 and said == ["interrupted"], err[-2000:]
