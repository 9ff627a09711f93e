"""Bad configuration is a one-line error through the real CLI; --debug shows the whole cause chain."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest


def clipsearch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed CLI in a fresh process, so nothing of the test's process leaks in."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "clipsearch", *args], env=full_env, capture_output=True, text=True, timeout=300
    )


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{text}"
    return lines[0]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CLIPSEARCH_FLAT_MAX", "50k", "error: CLIPSEARCH_FLAT_MAX='50k' is not a whole number"),
        ("CLIPSEARCH_MAX_MEGAPIXELS", "lots", "error: CLIPSEARCH_MAX_MEGAPIXELS='lots' is not a number"),
        ("CLIPSEARCH_MAX_MEGAPIXELS", "-5", "error: CLIPSEARCH_MAX_MEGAPIXELS='-5' must be 0 or more"),
    ],
)
def test_a_bad_environment_value_is_a_one_line_error(name, value, message):
    result = clipsearch("status", env={name: value})
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith(message) and "or unset it" in line


def test_a_misspelt_device_is_refused_before_torch_is_imported(tmp_path):
    code = textwrap.dedent("""
        import sys
        from clipsearch.cli import app
        try:
            app(["query", "a dog", "--device", "cudaa"])
        except SystemExit as exit:
            print("exit", exit.code, "torch" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.split() == ["exit", "1", "False"]
    assert one_line(result.stderr) == "error: --device 'cudaa' is not a device; use auto, cpu, cuda or cuda:N"


def test_index_refuses_a_misspelt_device_even_with_nothing_to_read(tmp_path):
    (tmp_path / "empty").mkdir()
    result = clipsearch("index", str(tmp_path / "empty"), "--device", "gpu")
    assert result.returncode == 1
    assert one_line(result.stderr) == "error: --device 'gpu' is not a device; use auto, cpu, cuda or cuda:N"


def test_debug_shows_the_cause_chain_and_the_default_stays_one_line(tmp_path):
    missing = tmp_path / "missing.jpg"
    short = clipsearch("query", "--image", str(missing))
    assert short.returncode == 1
    assert one_line(short.stderr) == f"error: --image {missing}: no such file"

    full = clipsearch("--debug", "query", "--image", str(missing))
    assert full.returncode == 1
    assert "FileNotFoundError" in full.stderr  # the cause
    assert "The above exception was the direct cause of the following exception" in full.stderr
    assert full.stderr.rstrip().endswith(f"clipsearch.errors.QueryError: --image {missing}: no such file")
