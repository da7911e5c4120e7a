# Set-up is part of every target: a fresh machine needs only `make suite` or `make test`.
# torch is installed first, pinned to the CPU build (an unpinned torch pulls a multi-GB CUDA build).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: setup suite test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

# The main job: every suite on the bundled default, first 50 samples, two xdist workers.
SUITE_ARGS ?= -n 2 --vlmgate-limit 50

suite: setup
	$(BIN)/pytest robustness_tests $(SUITE_ARGS) $(ARGS)

test: setup
	$(BIN)/pytest tests -n 2 $(ARGS)
