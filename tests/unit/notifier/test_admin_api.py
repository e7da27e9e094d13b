"""The admin API's JSON is camelCase, like every HTTP API and event, and its OpenAPI says so."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI
from funnel_notifier.admin import FollowUpView, router
from funnel_notifier.app import create_app
from funnel_notifier.settings import NotifierSettings
from funnel_shared.settings import DatabaseSettings, KafkaSettings, TopicSettings


def _schemas(app: FastAPI) -> dict[str, dict[str, object]]:
    components = app.openapi()["components"]["schemas"]
    return {
        name: schema["properties"] for name, schema in components.items() if "properties" in schema
    }


def test_the_openapi_document_shows_camel_case_fields() -> None:
    app = FastAPI()
    app.include_router(router)
    schemas = _schemas(app)
    assert {"ruleId", "contactId", "stageChangeId", "totalAttempts", "lastError", "dueAt"} <= set(
        schemas["FollowUpView"]
    )
    assert {"attemptsMade", "record"} <= set(schemas["FollowUpDetail"])
    assert {"statusCode", "retryAfterS", "startedAt"} <= set(schemas["AttemptView"])
    for name in ("FollowUpView", "FollowUpDetail", "AttemptView", "FollowUpPage"):
        assert not [field for field in schemas[name] if "_" in field], name


def test_a_follow_up_is_written_in_camel_case() -> None:
    now = datetime(2025, 1, 2, tzinfo=UTC)
    view = FollowUpView(
        id="f",
        status="dead",
        rule_id="crm",
        trigger="entered",
        channel="webhook",
        funnel="hourglass",
        contact_id="c-1",
        stage="closed",
        stage_change_id="s",
        due_at=now,
        attempts=4,
        total_attempts=4,
        last_error="HTTP 410",
        created_at=now,
        updated_at=now,
        sent_at=None,
    )
    data = view.model_dump(mode="json")
    assert data["ruleId"] == "crm" and data["totalAttempts"] == 4 and data["sentAt"] is None
    assert "rule_id" not in data


def test_the_service_serves_the_admin_and_operations_routes(tmp_path: Path) -> None:
    app = create_app(
        settings=NotifierSettings(rules_dir=tmp_path),
        kafka=KafkaSettings(),
        topics=TopicSettings(),
        database=DatabaseSettings(),
    )
    paths = set(app.openapi()["paths"])
    assert {"/v1/followups", "/v1/followups/{followup_id}/retry", "/healthz", "/readyz"} <= paths
    assert "/metrics" in paths
