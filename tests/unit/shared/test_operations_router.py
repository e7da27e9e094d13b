"""One router for /healthz, /readyz and /metrics."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from funnel_shared.operations import operations_router
from prometheus_client import CollectorRegistry, Counter


def _client(problem: list[str | None]) -> TestClient:
    registry = CollectorRegistry()
    Counter("widgets", "Widgets made.", registry=registry).inc(3)

    async def readiness() -> str | None:
        return problem[0]

    app = FastAPI()
    app.include_router(
        operations_router(readiness=readiness, registry=registry, ready_summary="Widgets flow")
    )
    return TestClient(app)


def test_healthz_answers_ok_whatever_the_readiness() -> None:
    response = _client(["database down"]).get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_answers_ready_or_503_with_the_reason() -> None:
    problem: list[str | None] = [None]
    client = _client(problem)
    response = client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})
    problem[0] = "broker unreachable"
    response = client.get("/readyz")
    assert (response.status_code, response.json()) == (503, {"status": "broker unreachable"})


def test_metrics_renders_the_given_registry() -> None:
    response = _client([None]).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "widgets_total 3.0" in response.text


def test_the_openapi_document_describes_the_routes() -> None:
    paths = _client([None]).get("/openapi.json").json()["paths"]
    assert paths["/readyz"]["get"]["summary"] == "Widgets flow"
    assert "503" in paths["/readyz"]["get"]["responses"]
    assert paths["/healthz"]["get"]["tags"] == ["operations"]
