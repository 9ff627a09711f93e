"""The README's front door stays true: its set-up commands exist, and its commands answer --help."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from clipsearch.cli import app, ui_cmd
from clipsearch.settings import ENVIRONMENT, MODEL_CACHE_ENV, Settings

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


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, flags=re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def _documented_usages() -> dict[str, tuple[set[str], set[str]]]:
    """Command path -> (options its README heading shows, options its section mentions anywhere)."""
    usages: dict[str, tuple[set[str], set[str]]] = {}
    sections = re.split(r"^(?=### )", _section("Commands"), flags=re.M)
    for section in sections:
        heading = section.split("\n", 1)[0]
        mentioned = set(re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", section))
        for usage in re.findall(r"`clipsearch ([^`]*)`", heading if heading.startswith("### ") else ""):
            words = usage.split()
            path = []
            while words and re.fullmatch(r"[a-z][a-z-]*", words[0]):
                path.append(words.pop(0))
            shown = set(re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", " ".join(words)))
            in_heading, in_section = usages.setdefault(" ".join(path), (set(), set()))
            in_heading.update(shown)
            in_section.update(mentioned)
    return usages


def _cli_commands() -> dict[str, Any]:
    """Command path -> the (click) command, from the Typer app itself."""
    found: dict[str, Any] = {}

    def walk(command: Any, path: tuple[str, ...]) -> None:
        if hasattr(command, "commands"):  # a group
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
        else:
            found[" ".join(path)] = command

    walk(typer.main.get_command(app), ())
    return found


def test_the_readme_documents_exactly_the_cli_commands():
    assert sorted(_documented_usages()) == sorted(_cli_commands())


@pytest.mark.parametrize("path", sorted(_cli_commands()))
def test_every_option_of_a_command_is_documented_in_its_section(path):
    in_heading, in_section = _documented_usages().get(path, (set(), set()))
    options = [p for p in _cli_commands()[path].params if p.param_type_name == "option" and not p.hidden]
    missing = [p.opts[0] for p in options if not in_section & set(p.opts)]
    unknown = in_heading - {name for p in options for name in (*p.opts, *p.secondary_opts)}  # --raw/--prompts
    assert (missing, unknown) == ([], set()), f"`clipsearch {path}`: README lacks {missing}, names unknown {unknown}"


def test_the_global_options_are_documented():
    root = typer.main.get_command(app)
    line = next(line for line in README.splitlines() if line.startswith("Global options:"))
    assert {o for p in root.params for o in p.opts if o.startswith("--")} == set(re.findall(r"`(--[a-z-]+)", line))


def test_the_configuration_table_is_what_settings_read():
    table = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| ([^|]*) \|", _section("Configuration"), flags=re.M))
    commands = [typer.main.get_command(app), *_cli_commands().values()]
    options = {p.envvar for c in commands for p in c.params if isinstance(p.envvar, str)}  # read by Typer
    settings = set(ENVIRONMENT.values()) | {MODEL_CACHE_ENV}
    assert settings <= set(table), f"README's Configuration table lacks {settings - set(table)}"
    read_elsewhere = {"HF_HUB_OFFLINE", "CLIPSEARCH_ARTIFACTS"}  # by huggingface_hub; by the browser tests
    unread = set(table) - settings - options - {ui_cmd.PASSWORD_ENV} - read_elsewhere
    assert not unread, f"documented but never read (by clipsearch.settings or an option): {unread}"
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    for field in ("flat_max", "max_megapixels"):
        assert float(table[ENVIRONMENT[field]].strip(" `")) == defaults[field], f"README's default for {field}"


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
