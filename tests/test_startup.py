"""Start-up of the real `clipsearch` process: what each command imports, and Ctrl-C at any moment.

Commands that never run a model (help, status, db, re-indexing an unchanged folder) and
queries (on the ONNX runtime) must not import torch, open_clip or streamlit: the test runs
the CLI in a subprocess and reads its ``sys.modules`` at exit. Ctrl-C is sent to the real
process at moments found from its own ``-X importtime`` trace (while it is still importing),
and must end it with "interrupted" and status 130, never a traceback.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import default_sigint, make_exif, save_image
from PIL import Image

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


# The light install, simulated: these packages cannot be imported at all (they are installed here).
ABSENT = (
    "import sys\n"
    "class Absent:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    f"        if name.split('.')[0] in {HEAVY + ('torchvision', 'onnx')!r}:\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, Absent())\n"
)


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPSEARCH_") and k != "DATABASE_URL"}
    return env | {"CLIPSEARCH_HOME": str(home), "HF_HUB_OFFLINE": "1"}


def _cli(home: Path, *args, probe: bool = False, light: bool = False, timeout: float = 300):
    start = [sys.executable, "-m", "clipsearch"]
    if probe or light:
        start = [sys.executable, "-c", (ABSENT if light else "") + PROBE]
    return subprocess.run([*start, *map(str, args)], env=_env(home), capture_output=True, text=True, timeout=timeout)


def _modules(result: subprocess.CompletedProcess) -> set[str]:
    assert result.returncode == 0, result.stderr
    line = next(li for li in result.stderr.splitlines() if li.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES ")))


def _results(stdout: str) -> list:
    """The hits of `query --json` (an object with "results")."""
    return json.loads(stdout)["results"]


def _heavy_modules(result: subprocess.CompletedProcess) -> list[str]:
    return sorted(m for m in _modules(result) if m.split(".")[0] in HEAVY)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, Path]:
    """A store indexed with the bundled model: (home, photos)."""
    root = tmp_path_factory.mktemp("startup")
    photos = root / "photos"
    generate_corpus(photos, 12, seed=5, split="heldout", size=64)
    first = Image.open(sorted(photos.glob("*.png"))[0]).convert("RGB")
    save_image(first, photos / "dated.jpg", make_exif(taken="2021:06:15 10:30:00", make="Canon"))  # for --after
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
    # Opening an up-to-date store checks its revision without Alembic; only `db` loads it.
    assert ("alembic" in _modules(result)) == (args[0] == "db")
    if args[0] == "index":
        assert "0 new" in result.stdout and "13 unchanged" in result.stdout


# What a SQLite store's no-work paths must not import either (besides HEAVY): SQLAlchemy (a quarter
# of a CPU-second) and Alembic on every one; an unchanged re-index also no numpy, FAISS, Pillow,
# tqdm or ONNX Runtime (it reads file states, compares, and checks the index file's header).
# Pydantic on none (typer 0.29 builds a pydantic validator per option on every run: pyproject holds it below).
NOT_IMPORTED = {
    "index": (
        ["index", "{photos}"],
        ("sqlalchemy", "alembic", "numpy", "faiss", "PIL", "tqdm", "onnxruntime", "pydantic"),
    ),
    "query": (["query", "a red circle"], ("sqlalchemy", "alembic", "pydantic")),
    "query --image": (["query", "--image", "{photo}"], ("sqlalchemy", "alembic", "pydantic")),
    "status": (["status"], ("sqlalchemy", "alembic", "PIL", "onnxruntime", "pydantic")),
}


@pytest.mark.parametrize("name", list(NOT_IMPORTED))
def test_no_work_paths_import_only_what_they_use(store, name):
    typer_version = tuple(int(p) for p in importlib.metadata.version("typer").split(".")[:2])
    assert typer_version < (0, 29), "typer >= 0.29 is installed, pyproject asks < 0.29: run `pip install -e .` again"
    home, photos = store
    args, absent = NOT_IMPORTED[name]
    photo = sorted(photos.glob("*.png"))[0]
    result = _cli(home, *[a.format(photos=photos, photo=photo) for a in args], probe=True)
    assert sorted(m for m in _modules(result) if m.split(".")[0] in absent) == []
    assert result.stdout.strip()


@pytest.mark.parametrize("command", ["index", "status", "db"])
def test_a_command_imports_only_its_own_module(store, command):
    """The other commands' modules (and typer's work to build them) are left out of every run."""
    home, photos = store
    args = {"index": ["index", photos], "status": ["status"], "db": ["db", "current"]}[command]
    result = _cli(home, *args, probe=True)
    loaded = {m for m in _modules(result) if m.startswith("clipsearch.cli.") and m.endswith("_cmd")}
    assert loaded == {f"clipsearch.cli.{command}_cmd"}


QUERIES = {
    "text": ["a red circle"],
    "image": ["--image", "{photo}"],
    "text+image": ["a red circle", "--image", "{photo}"],
    "filters": ["a red circle", "--folder", "{photos}", "--min-score", "-1", "--after", "2000-01-01", "-k", "3"],
}


@pytest.mark.parametrize("kind", list(QUERIES))
def test_queries_import_no_torch(store, kind):
    home, photos = store
    photo = sorted(photos.glob("*.png"))[0]
    args = [a.format(photo=photo, photos=photos) for a in QUERIES[kind]]
    result = _cli(home, "query", *args, "--json", probe=True)
    assert _heavy_modules(result) == []
    assert "alembic" not in _modules(result)
    assert _results(result.stdout), "no results"


def test_light_install_indexes_and_queries(tmp_path, store):
    """Without torch, open_clip, torchvision, onnx or streamlit importable: the bundled model's ONNX towers."""
    _home, photos = store
    home = tmp_path / "light"
    indexed = _cli(home, "index", photos, "--model", bundled_models()[0], "--json", light=True)
    assert indexed.returncode == 0, indexed.stderr
    assert json.loads(indexed.stdout)["new"] == 13
    found = _cli(home, "query", "a red circle", "--json", light=True)
    assert found.returncode == 0, found.stderr
    assert len(_results(found.stdout)) == 10
    torch_asked = _cli(home, "query", "a red circle", "--runtime", "torch", light=True)
    assert torch_asked.returncode == 1
    said = [li for li in torch_asked.stderr.splitlines() if not li.startswith("MODULES ")]
    assert said[-1] == ("error: this needs torch, which the light install leaves out: pip install 'clipsearch[torch]'")


def _interrupt_when(home: Path, args: list, marker: str, delay: float = 0.0) -> subprocess.CompletedProcess:
    """Run the CLI, send SIGINT once it has imported `marker` (+ delay seconds); its result."""
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "clipsearch", *map(str, args)],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
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


# Moments across start-up: importing the CLI (typer), registering the command (its module),
# opening the store (sqlite3, FAISS), loading the model (ONNX Runtime, the tokenizer)
# and, with a delay, creating its session and searching.
MOMENTS = [
    (["--help"], "typer", 0.0),
    (["status"], "clipsearch.cli.status_cmd", 0.0),
    (["status"], "sqlite3", 0.0),
    (["status"], "faiss", 0.0),
    (["query", "a red circle"], "typer", 0.0),
    (["query", "a red circle"], "PIL.Image", 0.0),
    (["query", "a red circle"], "sqlite3", 0.0),
    (["query", "a red circle"], "faiss", 0.0),
    (["query", "a red circle"], "onnxruntime", 0.0),
    (["query", "a red circle"], "tokenizers", 0.0),
    (["query", "a red circle"], "onnxruntime", 0.3),
]


@pytest.mark.parametrize("args,marker,delay", MOMENTS, ids=lambda v: str(v).replace(" ", "_"))
def test_ctrl_c_at_start_up_says_interrupted(store, args, marker, delay):
    home, _photos = store
    result = _interrupt_when(home, args, marker, delay)
    said = [li for li in result.stderr.splitlines() if li.strip() and not li.startswith("import time:")]
    if result.returncode in (0, -signal.SIGINT):
        # Only with a delay: the command finished first (its output is whole); -SIGINT when the signal
        # landed after Python's shutdown had put back the default handler, as it does before exiting.
        assert delay > 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
        assert args[0] != "query" or result.stdout.count("\n") == 10, result.stdout
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
        preexec_fn=default_sigint,
    )
    for line in proc.stderr:
        if line.rsplit("|", 1)[-1].strip() == "typer":
            proc.send_signal(signal.SIGINT)
            break
    _out, err = proc.communicate(timeout=120)
    said = [li for li in err.splitlines() if li.strip() and not li.startswith("import time:")]
    assert proc.returncode == 130 and said == ["interrupted"], err[-2000:]


def test_the_revision_files_name_alembics_head():
    """The store's open-time check reads the newest revision from the files; Alembic must agree."""
    from clipsearch.catalog import migrate

    assert migrate.declared_head() == migrate.head_revision()


def test_unreachable_hub_fails_in_one_line(tmp_path, store):
    """The default model with no hub: one line, no retry warnings (the hub client alone retries for a minute)."""
    _home, photos = store
    env = _env(tmp_path / "home") | {"HF_ENDPOINT": "http://127.0.0.1:9", "CLIPSEARCH_MODEL_CACHE": str(tmp_path / "m")}
    env.pop("HF_HUB_OFFLINE")
    result = subprocess.run(
        [sys.executable, "-m", "clipsearch", "index", str(photos)], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: could not download or load ViT-B-32:laion2b_s34b_b79k: the model hub")


@pytest.mark.parametrize(
    "args,said",
    [
        (["query", "x", "--top", "many"], "Invalid value for '-k' / '--top'"),
        (["query", "x", "--bogus"], "No such option: --bogus"),
        (["index"], "Missing argument 'SOURCE...'"),
    ],
    ids=["bad value", "unknown option", "missing argument"],
)
def test_usage_errors_are_one_message_not_a_traceback(tmp_path, args, said):
    result = _cli(tmp_path / "home", *args)
    assert result.returncode == 2, result.stderr
    assert said in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert "Try 'clipsearch " in result.stderr
