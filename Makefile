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
# AWS SAM CLI in its own virtual environment: its pins (boto3 1.43, its pydantic) conflict with
# the project's. The project's venv comes first on PATH so that SAM's pip builder finds
# python3.13; SAM downloads the manylinux aarch64 wheels itself (no Docker).
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed
SAM := PATH="$(CURDIR)/$(BIN):$$PATH" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam

.PHONY: help venv lint validate build deploy test bench local inbound configure-twilio openapi clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	@py=$$(./infra/find-python.sh) && echo "Creating $(VENV) with $$py" && "$$py" -m venv $(VENV)

$(STAMP): $(BIN)/python requirements-dev.txt layers/whatsapp_gateway/requirements.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

venv: $(STAMP) ## Create the virtual environment (Python 3.13) with the pinned dependencies

$(SAM_VENV)/bin/python:
	@py=$$(./infra/find-python.sh) && echo "Creating $(SAM_VENV) with $$py" && "$$py" -m venv $(SAM_VENV)

$(SAM_STAMP): $(SAM_VENV)/bin/python requirements-sam.txt
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet -r requirements-sam.txt
	@touch $@

lint: $(STAMP) ## ruff (style and errors) and mypy (types)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

validate: $(STAMP) $(SAM_STAMP) ## sam validate --lint and cfn-lint on template.yaml
	$(SAM) validate --lint
	$(BIN)/cfn-lint template.yaml

build: $(STAMP) $(SAM_STAMP) ## sam build: python3.13 on arm64, the layer included, into .aws-sam/
	$(SAM) build

deploy: ## sam build, then sam deploy of a samconfig.toml environment: make deploy ENV=dev|prod
# (DEPLOY_FLAGS adds sam deploy options: CI passes --no-confirm-changeset)
	@[[ "$(ENV)" =~ ^(dev|prod)$$ ]] || { echo "make deploy ENV=dev|prod (not '$(ENV)')"; exit 1; }
	$(MAKE) build
	$(SAM) deploy --config-env $(ENV) $(DEPLOY_FLAGS)

test: lint validate build ## Everything CI runs: lint, types, template checks, the build, every test
	$(BIN)/pytest

bench: $(STAMP) ## Benchmarks; numbers go to bench/results.json
	PYTHONPATH=$(IMPORT_ROOTS) $(BIN)/python -m bench.run

local: $(STAMP) ## The whole gateway on this machine: http://127.0.0.1:3000 (PORT overrides)
	PYTHONPATH=$(IMPORT_ROOTS) $(BIN)/python -m infra.local

inbound: $(STAMP) ## A contact writing in: make inbound FROM=+15005550006 BODY="hi"
	PYTHONPATH=$(IMPORT_ROOTS) $(BIN)/python -m infra.local.inbound --from "$(FROM)" --body "$(BODY)"

openapi: $(STAMP) ## Write the API's OpenAPI document, docs/openapi.json, from its routes
	PYTHONPATH=$(IMPORT_ROOTS) $(BIN)/python -m infra.openapi

configure-twilio: $(STAMP) ## Point Twilio at the stack: ENV=dev|prod SENDER=XE... (or MESSAGING_SERVICE=MG...)
	PYTHONPATH=$(IMPORT_ROOTS) $(BIN)/python -m infra.configure_twilio --env "$(ENV)" \
		$(if $(SENDER),--sender "$(SENDER)") $(if $(MESSAGING_SERVICE),--messaging-service "$(MESSAGING_SERVICE)")

clean: ## Remove the virtual environments, the build output and caches
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
