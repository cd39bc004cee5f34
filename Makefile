# The README's two commands. Each does its own set-up on a fresh machine: it makes .venv (Python 3.11) and
# installs the package with the pinned versions and the dev extra, once; a stamp file skips the install while
# pyproject.toml and constraints.txt are unchanged.
#
#   make demo    the quick-start job (DreamerV3, smoke preset, DMC cartpole_balance), then its report
#   make test    the test suite; PYTEST_ARGS picks tests, e.g. make test PYTEST_ARGS="tests/test_spec.py -x"
#   make lint    ruff (lint + format check) and deptry (declared dependencies = imported ones)

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RESULTS ?= results
REPORT ?= figures/demo
PYTEST_ARGS ?=
export MUJOCO_GL ?= egl
# As if .venv were activated: the commands that recipes and tests start come from it.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test lint install

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -c constraints.txt -e ".[dev]"
	touch $@

demo: $(STAMP)
	$(BIN)/bench run --suite dmc --tasks cartpole_balance --agents dreamerv3 --preset smoke --results $(RESULTS)
	$(BIN)/bench report $(RESULTS) --out $(REPORT)
	@echo "demo done: open $(REPORT)/report.html (figures and report.md beside it)"

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/deptry .
