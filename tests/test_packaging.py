"""The wheel: one `clipsearch` namespace, every package and data file in it, and it works outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        str(out),
        str(ROOT),
    ]
    subprocess.run(command, check=True, capture_output=True, cwd=out)
    return next(out.glob("clipsearch-*.whl"))


def _source_packages() -> set[str]:
    """Every package folder under clipsearch/ (the top-level indexer/, ui/, migrations/ are linked in)."""
    found = set()
    for folder, _dirs, files in os.walk(ROOT / "clipsearch", followlinks=True):
        if "__init__.py" in files:
            found.add(Path(folder).relative_to(ROOT).as_posix())
    return found


def test_wheel_installs_only_the_clipsearch_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    assert top == {"clipsearch", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    packages = {n.rsplit("/", 1)[0] for n in names if n.endswith("/__init__.py")}
    assert {
        "clipsearch/indexer",
        "clipsearch/ui",
        "clipsearch/migrations",
        "clipsearch/migrations/versions",
    } <= packages
    assert packages == _source_packages()
    for data in (
        "clipsearch/ui/app.py",
        "clipsearch/migrations/script.py.mako",
        "clipsearch/models/configs/cs-tiny.json",
        "clipsearch/models/vocab/clip_bpe_merges.txt.gz",
        # shapes-mini's ONNX towers: queries on the bundled model never need torch.
        "clipsearch/models/bundled/shapes-mini/onnx/visual/model.onnx",
        "clipsearch/models/bundled/shapes-mini/onnx/textual/model.onnx",
        "clipsearch/models/bundled/shapes-mini/onnx/textual/tokenizer.json",
    ):
        assert data in names


def test_wheel_works_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    probe = (
        "import importlib.util, pathlib\n"
        "import clipsearch, clipsearch.migrations, clipsearch.indexer\n"
        "from clipsearch.catalog import Catalog\n"
        "from clipsearch.models import bundled_models, CONFIGS_DIR\n"
        f"assert str(pathlib.Path(clipsearch.__file__)).startswith({str(target)!r}), clipsearch.__file__\n"
        "for name in ('indexer', 'ui', 'migrations'):\n"
        "    assert importlib.util.find_spec(name) is None, name\n"
        f"c = Catalog.open('sqlite:///{tmp_path}/c.db')\n"
        "print('stats', c.facts.stats().images)\n"
        "print('configs', sorted(p.name for p in CONFIGS_DIR.glob('*.json')))\n"
        "print('bundled', bundled_models())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1"},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "stats 0" in out
    assert "cs-tiny.json" in out
    assert "shapes-mini" in out
