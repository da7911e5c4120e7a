# Set-up is part of every target: a fresh machine needs only `make suite` or `make test`.
# torch is installed first, pinned to the CPU build (an unpinned torch pulls a multi-GB CUDA build).
# Every package is then installed at the exact version of constraints.txt, the set the tests
# ran with, so a fresh machine reproduces the tested run; pyproject.toml holds the ranges.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
TORCH := torch==2.13.0
LOCK := constraints.txt
LOWEST := constraints-lowest.txt

.PHONY: setup suite test lock upgrade-check lowest-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -c $(LOCK) -e '.[test]'
	$(BIN)/python -m pip check
	touch $@

setup: $(VENV)/.installed

# The main job: every suite on the bundled default, first 50 samples, two xdist workers.
SUITE_ARGS ?= -n 2 --vlmgate-limit 50

suite: setup
	$(BIN)/pytest robustness_tests $(SUITE_ARGS) $(ARGS)

test: setup
	$(BIN)/pytest tests -n 2 $(ARGS)

# Rewrite constraints.txt from the installed set (after `make upgrade-check` passed and its
# venv was promoted, or after a deliberate change of a range).
lock: setup
	{ sed -n '/^#/p' $(LOCK); $(BIN)/python -m pip freeze --exclude-editable; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)

# The newest versions pyproject.toml allows, in a venv of their own, then the test suite:
# a release inside the ranges that breaks a test shows here, never silently in CI (which
# installs the lock). Prints what differs from the lock.
upgrade-check:
	rm -rf .venv-upgrade && $(PYTHON) -m venv .venv-upgrade
	.venv-upgrade/bin/python -m pip install -q --upgrade pip $(TORCH)
	.venv-upgrade/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e '.[test]'
	.venv-upgrade/bin/python -m pip freeze --exclude-editable | sort > .venv-upgrade/freeze.txt
	@echo "versions that differ from $(LOCK):"; grep -v '^#' $(LOCK) | sort | comm -13 - .venv-upgrade/freeze.txt || true
	.venv-upgrade/bin/pytest tests -n 2 -W error::FutureWarning $(ARGS)

# The lower end of every range (constraints-lowest.txt), then the test suite.
lowest-check:
	rm -rf .venv-lowest && $(PYTHON) -m venv .venv-lowest
	.venv-lowest/bin/python -m pip install -q --upgrade pip $(TORCH)
	.venv-lowest/bin/python -m pip install -q -c $(LOWEST) -e '.[test]'
	.venv-lowest/bin/python -m pip check
	.venv-lowest/bin/pytest tests -n 2 $(ARGS)
