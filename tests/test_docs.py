"""The README's front door stays true: its set-up commands exist, and its commands answer --help."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clipsearch.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _make_target(name: str) -> str:
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{name}:.*\n((?:\t.*\n)+)", makefile, flags=re.M)
    assert match, f"Makefile has no {name} target"
    return match.group(1)


def test_readme_setup_commands_are_the_makefile_targets():
    assert "make demo" in README and "make test" in README
    assert "$(BIN)/clipsearch demo" in _make_target("demo")
    assert "pytest" in _make_target("test")
    install = (ROOT / "Makefile").read_text()
    assert "torch==2.14.1 torchvision==0.29.1" in install
    assert "pip install -q -e '.[dev]'" in install


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M)


@pytest.mark.parametrize("command", sorted(set(re.findall(r"^### `clipsearch ([a-z-]+)", README, flags=re.M))))
def test_documented_commands_have_help(command):
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_every_command_is_documented():
    commands = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    for name in commands:
        assert f"clipsearch {name}" in README, f"`clipsearch {name}` is not in the README"


def test_the_readme_main_job_runs_offline(tmp_path):
    """`make demo` runs `clipsearch demo`: it must work offline, with the bundled model, and find things."""
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "demo", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "indexed: 300 new" in out
    block = out.split("'a red circle'", 1)[1].split("\n\n", 1)[0]
    truths = re.findall(r"\[(.*)\]", block)
    assert len(truths) == 5
    assert sum("red circle" in t for t in truths) >= 4, block
    assert "clipsearch --home" in out and "query" in out
