"""An app factory for the ingest HTTP tests, over the shared fake publisher (no broker)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from funnel_ingest.app import create_app
from funnel_ingest.settings import IngestSettings
from funnel_shared.settings import KafkaSettings, TopicSettings
from pydantic import SecretStr

from tests.support.fake_publisher import FakePublisher

WRITE_KEY = "wk-test"


def make_app(publisher: FakePublisher, **settings: Any) -> FastAPI:
    fields: dict[str, Any] = {"write_keys": {"website": SecretStr(WRITE_KEY)}, "retry_after_s": 7}
    return create_app(
        settings=IngestSettings(**{**fields, **settings}),
        kafka=KafkaSettings(),
        topics=TopicSettings(),
        publisher=publisher,
    )
