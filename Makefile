# AIP — the two set-up commands of the README are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run down install install-dev test test-slow test-all verify lint typecheck bench clean

## make run: install AIP into .venv and start the platform (embedded SQLite, local processes)
run: install
	$(BIN)/aip up --detach

down:
	$(BIN)/aip down

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

## make test: install the test dependencies and run the test suite (slow suites excluded)
test: install-dev
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: install-dev
	$(BIN)/python -m pytest -m slow -q

test-all: install-dev
	$(BIN)/python -m pytest -q

lint: install-dev
	$(BIN)/ruff check src tests bench

typecheck: install-dev
	$(BIN)/mypy

## make verify: lint, type checks and the whole test suite — what a mergeable change passes
verify: lint typecheck test-all

bench: install-dev
	$(BIN)/python bench/control_plane.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
