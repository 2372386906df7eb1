# The project's vocabulary. CI calls `make test`; see README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The import roots Lambda gives the code (the layer, the function folders), as in pyproject.toml.
IMPORT_ROOTS := layers/whatsapp_gateway:functions:.
FROM ?= +15005550006
BODY ?= Hi!

.PHONY: help venv lint validate test bench local inbound clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	@py=$$(./infra/find-python.sh) && echo "Creating $(VENV) with $$py" && "$$py" -m venv $(VENV)

$(STAMP): $(BIN)/python requirements-dev.txt layers/whatsapp_gateway/requirements.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

venv: $(STAMP) ## Create the virtual environment (Python 3.13) with the pinned dependencies

lint: $(STAMP) ## ruff (style and errors) and mypy (types)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

validate: $(STAMP) ## cfn-lint on template.yaml
	$(BIN)/cfn-lint template.yaml

test: lint validate ## Everything CI runs: lint, types, template checks and every test
	$(BIN)/pytest

bench: $(STAMP) ## Benchmarks; numbers go to bench/results.json
	PYTHONPATH=$(IMPORT_ROOTS) $(BIN)/python -m bench.run

local: $(STAMP) ## The whole gateway on this machine: http://127.0.0.1:3000 (PORT overrides)
	PYTHONPATH=$(IMPORT_ROOTS) $(BIN)/python -m infra.local

inbound: $(STAMP) ## A contact writing in: make inbound FROM=+15005550006 BODY="hi"
	PYTHONPATH=$(IMPORT_ROOTS) $(BIN)/python -m infra.local.inbound --from "$(FROM)" --body "$(BODY)"

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
