"""A fake publisher and an app factory for the ingest HTTP tests (no broker)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from funnel_ingest.app import create_app
from funnel_ingest.settings import IngestSettings
from funnel_shared.settings import KafkaSettings, TopicSettings
from pydantic import SecretStr

WRITE_KEY = "wk-test"


class FakePublisher:
    """Records what was published. ``fail_with`` raises; ``hold`` blocks until released."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes, dict[str, str]]] = []
        self.fail_with: Exception | None = None
        self.fail_topic: str | None = None
        self.hold: asyncio.Event | None = None

    async def publish(
        self, topic: str, *, key: str, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        if self.hold is not None:
            await self.hold.wait()
        if self.fail_with is not None and self.fail_topic in (None, topic):
            raise self.fail_with
        self.sent.append((topic, key, value, {k: v.decode() for k, v in headers}))

    def on(self, topic: str) -> list[tuple[str, str, bytes, dict[str, str]]]:
        return [record for record in self.sent if record[0] == topic]


def make_app(publisher: FakePublisher, **settings: Any) -> FastAPI:
    fields: dict[str, Any] = {"write_keys": {"website": SecretStr(WRITE_KEY)}, "retry_after_s": 7}
    return create_app(
        settings=IngestSettings(**{**fields, **settings}),
        kafka=KafkaSettings(),
        topics=TopicSettings(),
        publisher=publisher,
    )
