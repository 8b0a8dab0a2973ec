# cmdgate: `make run` starts the local stack, `make test` runs every check.
# Both set up what they need first (four pinned venvs, then `sam build`); `make audit` runs the
# security checks (docs/audit.md).

SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
SAM_VENV := .venv-sam
RUNTIME_VENV := .venv-runtime
# bandit, pip-audit, checkov: checkov's pins clash with the dev venv's boto3 (requirements/audit.txt).
AUDIT_VENV := .venv-audit
PYTHONPATH_DEV := layers/resilience:layers/commands:local:cli:.
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# sam build needs the runtime's exact python (python3.11) on PATH.
SAM := PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" $(SAM_VENV)/bin/sam

.PHONY: setup build run test lint typecheck validate unit integration security contract invoke bench bench-cold bench-state bench-profile dr-drill bench-async chaos coverage openapi clean \
	audit audit-static audit-code audit-deps audit-template

# The four virtualenvs install side by side (about 150 s one after another on 2 cores, most of it
# waiting on unpacking and bytecode compiling); each one's output is kept together (-O), and
# an up-to-date one says nothing (-s).
VENVS := $(VENV)/.installed $(SAM_VENV)/.installed $(RUNTIME_VENV)/.installed $(AUDIT_VENV)/.installed
setup:
	@$(MAKE) --no-print-directory -s -j4 -O $(VENVS)

$(VENV)/.installed: requirements/dev.txt requirements/runtime.txt requirements/coverage.txt requirements/cli.txt layers/resilience/requirements.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements/dev.txt
	# The operator CLI as .venv/bin/cmdgate (editable: it runs the working tree's cli/).
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

$(SAM_VENV)/.installed: requirements/sam.txt
	test -x $(SAM_VENV)/bin/python || $(PY) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q -r requirements/sam.txt
	touch $@

$(RUNTIME_VENV)/.installed: requirements/runtime.txt requirements/coverage.txt
	test -x $(RUNTIME_VENV)/bin/python || $(PY) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/pip install -q -r requirements/runtime.txt
	# Test only: coverage of the functions under the emulator (inert unless `make test` asks for it).
	$(RUNTIME_VENV)/bin/pip install -q -r requirements/coverage.txt
	touch $@

$(AUDIT_VENV)/.installed: requirements/audit.txt
	test -x $(AUDIT_VENV)/bin/python || $(PY) -m venv $(AUDIT_VENV)
	$(AUDIT_VENV)/bin/pip install -q -r requirements/audit.txt
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

# The security suite alone (tests/security, on its own local stack); `make test` runs it too.
security: build
	$(VENV)/bin/pytest tests/security -q

# The suite ends with tests/integration/test_zzz_no_secrets_in_logs.py, the log scan for secrets.
# Coverage (docs/coverage.md): the pytest processes write their data into COVERAGE_DATA, combined
# after; under COVERAGE_FAIL_UNDER % lines it fails. `make coverage` measures the local stacks and
# the functions' runtimes under the emulator too (COVERAGE_RUNTIMES=1, about 1.5x the time) and
# rewrites docs/coverage.md. COVERAGE=0 runs the suite unmeasured.
COVERAGE ?= 1
COVERAGE_RUNTIMES ?= 0
COVERAGE_DATA := .coverage-data
COVERAGE_FAIL_UNDER ?= 91
COVERAGE_DOC := $(if $(filter 1,$(COVERAGE_RUNTIMES)),--doc docs/coverage.md,)
test: setup lint typecheck validate audit-static build
ifeq ($(COVERAGE),1)
	rm -rf $(COVERAGE_DATA)
	COVERAGE_PROCESS_START=$(CURDIR)/pyproject.toml COVERAGE_FILE=$(CURDIR)/$(COVERAGE_DATA)/.coverage \
		CMDGATE_COVERAGE_RUNTIMES=$(COVERAGE_RUNTIMES) $(VENV)/bin/pytest -q -n 2 --dist loadgroup --durations=30
	PYTHONPATH=$(PYTHONPATH_DEV) $(VENV)/bin/python -m audit.coverage_report --data $(COVERAGE_DATA) \
		$(COVERAGE_DOC) --fail-under $(COVERAGE_FAIL_UNDER)
else
	$(VENV)/bin/pytest -q -n 2 --dist loadgroup --durations=30
endif

# The whole suite with the functions' runtimes measured too (unit + integration combined).
coverage:
	$(MAKE) test COVERAGE=1 COVERAGE_RUNTIMES=1 COVERAGE_FAIL_UNDER=94

# Security checks; docs/audit.md says what each covers and lists the template checks skipped.
# audit-static is the part `make test` runs too: its typecheck already holds the layer to the
# --strict flags per module (pyproject.toml), and `sam validate --lint` runs cfn-lint.
audit-static: audit-code audit-deps audit-template

audit-code: setup
	$(AUDIT_VENV)/bin/bandit -q -c pyproject.toml -r layers functions local cli bench audit

audit-deps: setup
	$(AUDIT_VENV)/bin/python -m audit.deps

audit-template: setup
	BC_SKIP_MAPPING=TRUE $(AUDIT_VENV)/bin/checkov -f template.yaml --framework cloudformation --compact --quiet --skip-download

audit: lint typecheck audit-static build
	$(VENV)/bin/mypy --strict layers/resilience/cmdgate
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/pytest -q tests/integration/test_zzz_no_secrets_in_logs.py

openapi: setup
	PYTHONPATH=$(PYTHONPATH_DEV) $(VENV)/bin/python -m cmdgate_local.openapi_export

# Every benchmark on one fresh local stack, then docs/benchmarks.md and docs/img/*.png (bench/suite.py);
# ARGS="--quick" is the small run (under 3 minutes), ARGS="--only command" (async, state, cold) a part.
bench: build $(VENV)/.bench-installed
	PYTHONPATH=$(PYTHONPATH_DEV) $(VENV)/bin/python -m bench.suite $(ARGS)

# Cold starts per function (init + first invocation) against a boto3 floor (ARGS="--quick": 3 each).
bench-cold: build $(VENV)/.bench-installed
	PYTHONPATH=$(PYTHONPATH_DEV) $(VENV)/bin/python -m bench.cold_start $(ARGS)

# Benchmark-only dependencies (the plots), into the dev venv once.
$(VENV)/.bench-installed: requirements/bench.txt $(VENV)/.installed
	$(VENV)/bin/pip install -q -r requirements/bench.txt
	touch $@

# The command path alone (sync echo through the front, the layer against a bare handler), on a stack of its own.
.PHONY: bench-command
bench-command: build $(VENV)/.bench-installed
	PYTHONPATH=$(PYTHONPATH_DEV) $(VENV)/bin/python -m bench.run $(ARGS)

bench-state: build $(VENV)/.bench-installed
	PYTHONPATH=$(PYTHONPATH_DEV) $(VENV)/bin/python -m bench.state_sync $(ARGS)

# The stack process's RSS and moto's lock time per AWS action while new state keys are written.
bench-profile: build
	PYTHONPATH=$(PYTHONPATH_DEV) $(VENV)/bin/python -m bench.stack_profile $(ARGS)

# Disaster-recovery drill: 1,000 keys synced, the state table wiped, `cmdgate state recover`, verified.
dr-drill: build
	PYTHONPATH=$(PYTHONPATH_DEV) $(VENV)/bin/python -m bench.dr_drill $(ARGS)

# Async commands: drain rate beside moto's ceiling, and a failing mix's outcomes (ARGS="--quick": 100).
bench-async: build $(VENV)/.bench-installed
	PYTHONPATH=$(PYTHONPATH_DEV) $(VENV)/bin/python -m bench.async_drain $(ARGS)

# Chaos drill: each fault (AWS errors and latency, Gist API faults, killed and paused runtimes, duplicate
# deliveries, a killed healer) against the local stack; its table to docs/reliability.md (ARGS="--quick").
chaos: build
	PYTHONPATH=$(PYTHONPATH_DEV) $(VENV)/bin/python -m bench.chaos $(ARGS)

clean:
	rm -rf .aws-sam .local-stack .sam-build.log .mypy_cache .ruff_cache .pytest_cache
