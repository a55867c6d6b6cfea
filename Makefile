# Developer entry points. The README's test command is `make test` (also what .ci/run runs).
SHELL := /bin/bash
PY := .venv/bin/python
PYTEST_ARGS ?=
STACK_ARGS ?=
SIM_ARGS ?=

.PHONY: venv up up-cluster down wipe status verify test lint bench simulate

venv: .venv/.installed

.venv/.installed: pyproject.toml
	@test -x $(PY) || { command -v python3.11 >/dev/null && python3.11 -m venv .venv || python3 -m venv .venv; }
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

up: venv
	$(PY) -m deploy.stack up $(STACK_ARGS)

up-cluster: venv
	$(PY) -m deploy.stack up --cluster $(STACK_ARGS)

down: venv
	$(PY) -m deploy.stack down

wipe: venv
	$(PY) -m deploy.stack wipe

status: venv
	$(PY) -m deploy.stack status

verify: venv
	$(PY) -m deploy.stack verify

test: venv
	$(PY) -c 'from deploy.local import REPO_ROOT, ensure_kafka_libs; print("kafka libs:", ensure_kafka_libs(REPO_ROOT))'
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium for the browser tests"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq chromium; \
	fi
	$(PY) -m pytest tests $(PYTEST_ARGS)

lint: venv
	.venv/bin/ruff check shared services deploy tests
	.venv/bin/mypy shared services deploy tests

bench: venv
	@if ! command -v wrk >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing wrk for bench/intake.py"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }; \
	fi
	@for f in bench/*.py; do \
		[ -e "$$f" ] || continue; \
		echo "== $$f"; \
		$(PY) "$$f" || exit $$?; \
	done

simulate: venv
	$(PY) -m deploy.simulate $(SIM_ARGS)
