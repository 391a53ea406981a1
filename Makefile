# Two entry points for a fresh clone: `make demo` and `make test` (CI runs `make test`).
# Both create .venv, install torch first (TORCH, pinned so pip takes the CPU build that
# lies on the lab's disk; on a CUDA workstation PyPI's torch==2.13.0 is a CUDA build),
# then the project, so pip keeps that torch.

PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: setup demo test test-fast bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: setup
	$(BIN)/iscl demo

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

bench: setup
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	$(BIN)/python benchmarks/train_speed.py
	$(BIN)/python benchmarks/inference_speed.py
