"""Tokens for what shows contact data or changes state: ``funnel_shared.auth``.

One implementation, used by the stage engine (read API, pages, /metrics) and
the notifier (admin API, /metrics); here over a small app with the same
dependencies, then over the two services' own apps.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from funnel_notifier.app import create_app as create_notifier_app
from funnel_notifier.settings import NotifierSettings
from funnel_shared.auth import Access, is_loopback, public_bind_problem
from funnel_shared.operations import operations_router
from funnel_shared.settings import DatabaseSettings, KafkaSettings, TopicSettings
from funnel_stage_engine.metrics import StageEngineMetrics
from funnel_stage_engine.read.projection import Projection
from funnel_stage_engine.read.web import create_web_app
from funnel_stage_engine.settings import StageEngineSettings
from prometheus_client import CollectorRegistry
from pydantic import SecretStr, ValidationError

from tests.support.access import TOKEN, TOKENS, test_access
from tests.support.journey_set import funnels_under_test

WRONG = "x" * 43


def _basic(password: str, user: str = "me") -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _app(access: Access) -> TestClient:
    api, pages = APIRouter(), APIRouter()

    @api.get("/v1/secret")
    async def secret() -> dict[str, str]:
        return {"email": "someone@example.com"}

    @pages.get("/page")
    async def page() -> dict[str, str]:
        return {"page": "contacts"}

    async def ready() -> str | None:
        return None

    app = FastAPI()
    app.include_router(api, dependencies=access.api())
    app.include_router(pages, dependencies=access.pages())
    app.include_router(
        operations_router(
            readiness=ready, registry=CollectorRegistry(), metrics_dependencies=access.metrics()
        )
    )
    return TestClient(app)


def test_a_request_without_a_token_gets_401_with_a_bearer_challenge() -> None:
    response = _app(test_access()).get("/v1/secret")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "someone@example.com" not in response.text


@pytest.mark.parametrize(
    "headers",
    [
        _bearer(WRONG),
        _bearer(TOKEN[:-1]),
        _bearer(TOKEN + "x"),
        {"Authorization": f"Token {TOKEN}"},
        {"Authorization": "Bearer "},
        _basic(WRONG),
        _basic("", user=TOKEN),  # The token as the user name is not the password.
        {"Authorization": "Basic not-base64!"},
    ],
)
def test_a_wrong_token_gets_401(headers: dict[str, str]) -> None:
    assert _app(test_access()).get("/v1/secret", headers=headers).status_code == 401


@pytest.mark.parametrize("token", TOKENS)
def test_each_of_two_rotated_tokens_opens_the_api(token: str) -> None:
    response = _app(test_access()).get("/v1/secret", headers=_bearer(token))
    assert (response.status_code, response.json()) == (200, {"email": "someone@example.com"})


def test_pages_take_the_token_as_the_basic_password_and_challenge_with_basic() -> None:
    client = _app(test_access())
    refused = client.get("/page")
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic ")
    for token in TOKENS:
        assert client.get("/page", headers=_basic(token)).status_code == 200
        assert client.get("/page", headers=_basic(token, user="")).status_code == 200
    assert client.get("/page", headers=_basic(WRONG)).status_code == 401


def test_health_and_readiness_stay_open_and_metrics_need_the_token_by_default() -> None:
    client = _app(test_access())
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=_bearer(TOKENS[1])).status_code == 200


def test_metrics_can_be_left_open() -> None:
    tokens = [SecretStr(token) for token in TOKENS]
    client = _app(Access.of(tokens, metrics_require_token=False))
    assert client.get("/metrics").status_code == 200
    assert client.get("/v1/secret").status_code == 401


def test_without_tokens_nothing_is_asked() -> None:
    client = _app(Access())
    assert client.get("/v1/secret").status_code == 200
    assert client.get("/page").status_code == 200


def test_tokens_are_read_as_a_comma_separated_or_json_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STAGE_ENGINE_API_TOKENS", f" {TOKENS[0]} , {TOKENS[1]} ")
    settings = StageEngineSettings()
    assert [token.get_secret_value() for token in settings.api_tokens] == list(TOKENS)
    monkeypatch.setenv("NOTIFIER_API_TOKENS", f'["{TOKENS[1]}"]')
    assert [t.get_secret_value() for t in NotifierSettings().api_tokens] == [TOKENS[1]]
    monkeypatch.setenv("NOTIFIER_API_TOKENS", "")
    assert NotifierSettings().api_tokens == []


def test_a_short_token_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGE_ENGINE_API_TOKENS", f"{TOKENS[0]},short-secret-value")
    with pytest.raises(ValidationError) as raised:
        StageEngineSettings()
    assert "token 2 of 2 is shorter than 32 characters" in str(raised.value)
    assert "short-secret-value" not in str(raised.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "localhost", "::1", "[::1]"])
def test_a_loopback_address_needs_no_token(host: str) -> None:
    assert is_loopback(host)
    assert public_bind_problem(host=host, tokens=[], tokens_env="X_API_TOKENS") is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "example.com", ""])
def test_any_other_address_needs_a_token(host: str) -> None:
    problem = public_bind_problem(host=host, tokens=[], tokens_env="X_API_TOKENS")
    assert problem is not None and "X_API_TOKENS" in problem and "127.0.0.1" in problem
    tokens = [SecretStr(TOKEN)]
    assert public_bind_problem(host=host, tokens=tokens, tokens_env="X_API_TOKENS") is None


def _stage_engine_client() -> TestClient:
    projection = Projection(
        kafka=KafkaSettings(), database=DatabaseSettings(), topic="t", group_id="g"
    )
    app = create_web_app(
        funnels=funnels_under_test(),
        projection=projection,
        metrics=StageEngineMetrics(),
        worker_status=lambda: "",
        access=test_access(),
    )
    return TestClient(app)


def test_the_stage_engine_guards_its_read_api_pages_and_metrics() -> None:
    client = _stage_engine_client()
    for path in ("/v1/funnels", "/v1/funnels/journey", "/v1/contacts/c-1", "/metrics"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"] == "Bearer", path
    for path in ("/", "/funnels/journey"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"].startswith("Basic "), path
    assert client.get("/v1/funnels", headers=_bearer(TOKENS[1])).status_code == 200
    assert client.get("/", headers=_basic(TOKENS[0])).status_code == 200
    assert client.get("/metrics", headers=_bearer(TOKENS[0])).status_code == 200
    assert client.get("/healthz").status_code == 200
    # Not ready (no projection here), and it says so without asking for a token.
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["status"].startswith("projection: ")


def test_the_notifier_guards_its_admin_api_and_metrics(tmp_path: Path) -> None:
    settings = NotifierSettings(
        rules_dir=tmp_path, api_tokens=[SecretStr(token) for token in TOKENS]
    )
    app = create_notifier_app(
        settings=settings,
        kafka=KafkaSettings(),
        topics=TopicSettings(),
        database=DatabaseSettings(),
    )
    client = TestClient(app)  # Not started: nothing behind the routes runs without a token.
    for method, path in (
        ("GET", "/v1/followups"),
        ("GET", "/v1/followups/8a6e0804-2bd0-4a6d-b9d7-6a1b1c1b1c1b"),
        ("POST", "/v1/followups/8a6e0804-2bd0-4a6d-b9d7-6a1b1c1b1c1b/retry"),
        ("GET", "/metrics"),
    ):
        response = client.request(method, path, headers=_bearer(WRONG))
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"] == "Bearer", path
    assert client.get("/metrics", headers=_bearer(TOKENS[1])).status_code == 200
    assert client.get("/healthz").status_code == 200
