# The two commands: `make dev` runs the whole system, `make test` runs every check.
# Both install what they need on a machine that has only Python and the package
# registries: uv (pinned) into .tools/, then the locked workspace into .venv/.

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: dev test install lint packages browser unit integration e2e soak schemas docs clean bench deploy-check

dev: install
	$(VENV)/bin/funnel-dev

# Two test processes (pytest-xdist), each file on one: most integration and e2e tests
# wait on the broker or on processes, so two overlap well on two cores.
TEST_WORKERS ?= 2
test: install lint packages browser
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile

install: $(VENV)/.installed

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: $(UV) uv.lock pyproject.toml shared/pyproject.toml services/*/pyproject.toml tools/*/pyproject.toml
	$(UV) sync --all-packages --frozen --python $(PYTHON)
	touch $@

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Each package declares what it imports: sync it alone and import its entry point.
SOLO := funnel-shared:funnel_shared.kafka funnel-ingest:funnel_ingest.main \
	funnel-stage-engine:funnel_stage_engine.main funnel-notifier:funnel_notifier.main \
	funnel-devstack:funnel_devstack.main funnel-bench:funnel_bench.main \
	funnel-docgen:funnel_docgen.main
packages: $(UV)
	@for pair in $(SOLO); do \
		pkg=$${pair%%:*}; module=$${pair##*:}; env=.tools/solo/$$pkg; \
		UV_PROJECT_ENVIRONMENT=$$env $(UV) sync --quiet --package $$pkg --frozen --no-dev \
			--python $(PYTHON) && $$env/bin/python -c "import $$module" \
			&& echo "$$pkg: installs and imports alone" || exit 1; \
	done

# The funnel-page test drives Debian's chromium over the DevTools protocol (playwright,
# no browser download). Installed with apt-get when missing; needs root or sudo.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser test"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			$$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	} || { echo "cannot install chromium: run 'apt-get install chromium' as root" >&2; exit 1; }

unit: install
	$(VENV)/bin/pytest tests/unit

integration: install browser
	$(VENV)/bin/pytest tests/integration

e2e: install
	$(VENV)/bin/pytest tests/e2e

# The stage engine's crash, replay and rebalance proofs (docs/stage-engine.md), each run
# SOAK_RUNS times, the rebalance test at full size (50,000 events, ten rounds): about an
# hour on two cores. Stops at the first failure.
SOAK_RUNS ?= 10
SOAK_TESTS = tests/integration/stage_engine/test_crash.py \
	tests/integration/stage_engine/test_durable_states.py \
	tests/integration/stage_engine/test_replay_past_window.py \
	tests/integration/stage_engine/test_rebalance_backlog.py
soak: install
	for run in $$(seq $(SOAK_RUNS)); do \
		echo "soak run $$run of $(SOAK_RUNS)"; \
		FUNNEL_REBALANCE_CONTACTS=5000 FUNNEL_REBALANCE_ROUNDS=10 \
			$(VENV)/bin/pytest -q --timeout 3600 $(SOAK_TESTS) || exit 1; \
	done

# Benchmarks against their baselines, as ratios: writes bench/results/latest.{json,md}.
# wrk is the load generator (Debian's package, installed here when we are root);
# without it the bench falls back to a Python load generator and the report says so.
BENCH_ARGS ?=
bench: install
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update -qq && apt-get install -y -qq wrk >/dev/null; } \
		|| echo "wrk is not installed: using the Python load generator"
	$(VENV)/bin/funnel-bench --out bench/results $(BENCH_ARGS)

# Regenerate docs/schemas after changing an event model.
schemas: install
	$(VENV)/bin/python -m funnel_shared.schemas docs/schemas

# Regenerate docs/configuration.md, .env.example and docs/asyncapi.yaml from the settings
# classes' field descriptions, the event models and the topic settings (a test fails on drift).
docs: schemas
	$(VENV)/bin/funnel-docgen

# The docker-compose deployment, for real: builds the images, starts the stack from a fresh
# .env in a temporary copy, checks it end to end and removes it (deploy/check.sh, steps in
# docs/deploy.md). Not part of `make test`: it needs a container engine. With podman:
#   make deploy-check ENGINE=podman COMPOSE=podman-compose
ENGINE ?= docker
COMPOSE ?= docker compose
deploy-check:
	ENGINE='$(ENGINE)' COMPOSE='$(COMPOSE)' deploy/check.sh

clean:
	rm -rf .tools $(VENV) .funnel-dev .pytest_cache .mypy_cache .ruff_cache
