# AIP — the two set-up commands of the README are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run down install install-dev browser test test-envs test-envs-cached test-slow test-all verify lint typecheck bench clean

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

## make browser: headless Chromium from Debian's packages, for the console's browser tests
## (tests/e2e; Playwright drives /usr/bin/chromium, so `playwright install` is never needed)
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y --no-install-recommends chromium || \
		{ apt-get update && apt-get install -y --no-install-recommends chromium; }; \
	else echo "no /usr/bin/chromium: run 'sudo apt-get install chromium' (Debian/Ubuntu);" \
		"the console's browser tests skip without it"; fi

## make test: install the test dependencies and run the test suite (slow suites excluded)
test: install-dev browser
	$(BIN)/python -m pytest -m "not slow" -q

## make test-envs: build the per-job environments (MXNet, MindSpore, MPI, old numpy) and run
## their jobs; afterwards `make test-envs-cached` (run by .ci/run) reuses them
test-envs: install-dev
	AIP_BUILD_TEST_ENVS=1 $(BIN)/python -m pytest -m envs -q

test-envs-cached: install-dev
	$(BIN)/python -m pytest -m envs -q

test-slow: install-dev
	$(BIN)/python -m pytest -m slow -q

test-all: install-dev
	$(BIN)/python -m pytest -q

lint: install-dev
	$(BIN)/ruff check src tests bench examples

typecheck: install-dev
	$(BIN)/mypy

## make verify: lint, type checks and the whole test suite — what a mergeable change passes
verify: lint typecheck test-all

bench: install-dev
	$(BIN)/python bench/control_plane.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
