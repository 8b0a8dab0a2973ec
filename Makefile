# cmdgate: `make run` starts the local stack, `make test` runs every check.
# Both set up what they need first (three pinned venvs, then `sam build`).

SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
SAM_VENV := .venv-sam
RUNTIME_VENV := .venv-runtime
PYTHONPATH_DEV := layers/resilience:layers/commands:local:cli:.
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# sam build needs the runtime's exact python (python3.11) on PATH.
SAM := PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" $(SAM_VENV)/bin/sam

.PHONY: setup build run test lint typecheck validate unit integration contract invoke bench bench-state bench-async openapi clean

setup: $(VENV)/.installed $(SAM_VENV)/.installed $(RUNTIME_VENV)/.installed

$(VENV)/.installed: requirements/dev.txt requirements/runtime.txt requirements/cli.txt layers/resilience/requirements.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements/dev.txt
	# The operator CLI as .venv/bin/cmdgate (editable: it runs the working tree's cli/).
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

$(SAM_VENV)/.installed: requirements/sam.txt
	test -x $(SAM_VENV)/bin/python || $(PY) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q -r requirements/sam.txt
	touch $@

$(RUNTIME_VENV)/.installed: requirements/runtime.txt
	test -x $(RUNTIME_VENV)/bin/python || $(PY) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/pip install -q -r requirements/runtime.txt
	touch $@

build: setup
	$(SAM) build --cached --parallel > .sam-build.log 2>&1 || (cat .sam-build.log; exit 1)
	@echo "sam build: ok (.aws-sam/build)"

run: build
	PYTHONPATH=$(PYTHONPATH_DEV) $(VENV)/bin/python -m cmdgate_local $(ARGS)

# Says at once when no stack runs (before building); the running stack has its own copy of the build.
invoke: setup
	@test -n "$(FN)" -a -n "$(EVENT)" || (echo "usage: make invoke FN=<LogicalId> EVENT=events/<file>.json"; exit 2)
	@PYTHONPATH=$(PYTHONPATH_DEV) $(VENV)/bin/python -m cmdgate_local.invoke --check-stack
	@$(MAKE) --no-print-directory build
	PYTHONPATH=$(PYTHONPATH_DEV) $(VENV)/bin/python -m cmdgate_local.invoke $(FN) $(EVENT)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

validate: setup
	$(SAM) validate --lint

unit: setup
	$(VENV)/bin/pytest tests/unit -q

contract: setup
	$(VENV)/bin/pytest tests/contract -q

integration: build
	$(VENV)/bin/pytest tests/integration -q

test: setup lint typecheck validate build
	$(VENV)/bin/pytest -q

openapi: setup
	PYTHONPATH=$(PYTHONPATH_DEV) $(VENV)/bin/python -m cmdgate_local.openapi_export

bench: build
	PYTHONPATH=$(PYTHONPATH_DEV) $(VENV)/bin/python -m bench.run $(ARGS)

# Benchmark-only dependencies (the state benchmark's plots), into the dev venv once.
$(VENV)/.bench-installed: requirements/bench.txt $(VENV)/.installed
	$(VENV)/bin/pip install -q -r requirements/bench.txt
	touch $@

bench-state: build $(VENV)/.bench-installed
	PYTHONPATH=$(PYTHONPATH_DEV) $(VENV)/bin/python -m bench.state_sync $(ARGS)

# Async commands: drain rate beside moto's ceiling, and a failing mix's outcomes (ARGS="--quick": 100).
bench-async: build
	PYTHONPATH=$(PYTHONPATH_DEV) $(VENV)/bin/python -m bench.async_drain $(ARGS)

clean:
	rm -rf .aws-sam .local-stack .sam-build.log .mypy_cache .ruff_cache .pytest_cache
