# Set-up and everyday commands. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, pinned: pip otherwise resolves torch through open_clip and may pick a
# multi-GB build that does not match torchvision. Override for other platforms.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
export HF_HUB_OFFLINE ?= 1

.PHONY: install demo test lint format clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/clipsearch demo

test: install
	$(BIN)/python -m pytest -q

# ruff (lint, import order, format), the layer contracts of import-linter and strict mypy on the core
# (all configured in pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) build dist *.egg-info
