# RIMAS: `make run` serves the API, `make test` runs the whole suite. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.rimas-installed

.DEFAULT_GOAL := help
.PHONY: help run test lint pytest bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "RIMAS needs Python >= 3.11 (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP) ## install, migrate, seed an empty database and serve on RIMAS_HOST:RIMAS_PORT (127.0.0.1:8000)
	$(BIN)/rimas serve

test: lint pytest ## install with dev extras, then lint and run the whole test suite

lint: $(STAMP) ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/mypy

pytest: $(STAMP) ## the test suite only
	$(BIN)/pytest

bench: $(STAMP) ## run the benchmarks in bench/ (figures, not pass/fail)
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean: ## remove caches (keeps .venv and .rimas data)
	rm -rf .pytest_cache .mypy_cache .ruff_cache
