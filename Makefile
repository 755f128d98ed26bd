# One-command set-up and checks. Everything installs into ./.venv from the package registry.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo test check lint redis node-tools bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## demo: install memex and run the quickstart on the embedded default store
demo: $(VENV)/.core
	$(BIN)/memex quickstart

## lint: ruff (lint and format check), mypy (strict on the package) and the import
## contracts (import-linter: layers, no circles; see [tool.importlinter] in pyproject.toml)
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## redis: redis-server for the tests that share limits through Redis (Debian's package;
## fast when installed already)
redis:
	@bash scripts/install-redis.sh

## node-tools: Node 22, the MCP conformance suite and the MCP Inspector CLI that the MCP
## tests drive, pinned by tests/node/package-lock.json, into .cache/node (a no-op once there)
node-tools:
	@scripts/install-node-tools

## test: lint, type-check, install the test servers and tools (redis-server, Node 22 and the
## MCP tools) and run the whole test suite
test: lint redis node-tools
	@$(BIN)/python -m pytest -n 2; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing loudly" >&2; exit 1; fi; \
	exit $$rc

check: test

## bench: retrieval quality on the LoCoMo dev set (see docs/benchmarks.md for the rest)
bench: $(VENV)/.dev
	$(BIN)/python benchmarks/locomo.py --markdown

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .grimp_cache *.egg-info
