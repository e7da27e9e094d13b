# syntax=docker/dockerfile:1
# The stage engine (faust worker). Build from the repository root:
#   docker build -f deploy/stage-engine.Dockerfile -t funnel/stage-engine .
# Layout and reasons: deploy/README.md ("The images").

ARG PYTHON_IMAGE=python:3.12.12-slim-bookworm

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM ${PYTHON_IMAGE} AS builder
COPY --from=uv /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first, from the lock alone, so that this layer survives code changes.
# uv needs every workspace member's pyproject.toml to read the lock.
COPY uv.lock pyproject.toml ./
COPY shared/pyproject.toml shared/
COPY services/ingest/pyproject.toml services/ingest/
COPY services/stage-engine/pyproject.toml services/stage-engine/
COPY services/notifier/pyproject.toml services/notifier/
COPY tools/bench/pyproject.toml tools/bench/
COPY tools/devstack/pyproject.toml tools/devstack/
COPY tools/docgen/pyproject.toml tools/docgen/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package funnel-stage-engine
# Then only the shared library and this service, installed as wheels (not editable),
# so that the final stage needs nothing but the virtual environment.
COPY shared/ shared/
COPY services/stage-engine/ services/stage-engine/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package funnel-stage-engine

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 funnel \
    && useradd --system --uid 10001 --gid funnel --no-create-home funnel \
    && mkdir -p /var/lib/funnel/stage-engine \
    && chown 10001:10001 /var/lib/funnel/stage-engine
COPY --from=builder /app/.venv /app/.venv
# The table store (RocksDB) lives in the data directory. It is a cache of the
# changelog topic: a fresh directory is rebuilt from Kafka at start-up.
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 \
    STAGE_ENGINE_HOST=0.0.0.0 \
    STAGE_ENGINE_DATA_DIR=/var/lib/funnel/stage-engine
WORKDIR /app
USER 10001:10001
EXPOSE 8001
# Liveness only (/healthz): /readyz is 503 during every rebalance, see deploy/README.md.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${STAGE_ENGINE_PORT:-8001}/healthz', timeout=3)"
ENTRYPOINT ["funnel-stage-engine"]
