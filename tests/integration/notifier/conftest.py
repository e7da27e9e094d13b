"""The notifier's integration set-up: an in-process notifier whose webhook rules point at
a real receiver, with a fresh contact per test."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from funnel_notifier.consumer import StageChangeConsumer
from funnel_notifier.postgres.intake import PostgresStageChangeStore
from funnel_notifier.runtime import Runtime
from funnel_shared.events import ContactMerged, StageChanged, StageStalled
from funnel_shared.kafka import AiokafkaPublisher, consumer_kwargs
from funnel_shared.settings import KafkaSettings, TopicSettings

from tests.integration.conftest import StartNotifier
from tests.support.notifier_support import (
    Reply,
    WebhookReceiver,
    new_secret,
    publish_change,
    stage_change,
)


@dataclass
class HookedNotifier:
    """A running notifier, the receiver its rules' HOOK_URL points at, and a new contact."""

    contact: str
    receiver: WebhookReceiver
    runtime: Runtime
    publisher: AiokafkaPublisher
    topic: str

    async def publish(self, *records: StageChanged | StageStalled | ContactMerged) -> None:
        """Put stage-engine outputs on the stage-changed topic, in order."""
        for record in records:
            await publish_change(self.publisher, self.topic, record)

    async def enter(self, to_stage: str = "closed", **fields: Any) -> StageChanged:
        """The contact enters ``to_stage`` of the hourglass; returns the stage change."""
        change = stage_change(self.contact, funnel="hourglass", to_stage=to_stage, **fields)
        await self.publish(change)
        return change


StartHooked = Callable[..., AbstractAsyncContextManager[HookedNotifier]]


@pytest.fixture
def hooked_notifier(
    start_notifier: StartNotifier, publisher: AiokafkaPublisher, topics: TopicSettings
) -> StartHooked:
    """``async with hooked_notifier(rules, [Reply(500)], poll_interval_s=...) as hooked:``
    starts a notifier with HOOK_URL and HOOK_SECRET set for a receiver with that script;
    the receiver stops when the block ends (the notifier at the end of the test)."""

    @asynccontextmanager
    async def start(
        rules: str, script: list[Reply] | None = None, **overrides: Any
    ) -> AsyncIterator[HookedNotifier]:
        secret = new_secret()
        with WebhookReceiver(secret, script) as receiver:
            env = {"HOOK_URL": receiver.url, "HOOK_SECRET": secret}
            runtime = await start_notifier(rules, env, **overrides)
            yield HookedNotifier(
                contact=f"c-{uuid.uuid4().hex}",
                receiver=receiver,
                runtime=runtime,
                publisher=publisher,
                topic=topics.stage_changed,
            )

    return start


@dataclass
class RunningConsumer:
    """A ``StageChangeConsumer`` running in a task, over a real group member and store."""

    worker: StageChangeConsumer
    consumer: AIOKafkaConsumer
    task: asyncio.Task[None]

    async def committed_total(self) -> int:
        """The sum of the group's committed offsets over this member's partitions."""
        return sum([await self.consumer.committed(tp) or 0 for tp in self.consumer.assignment()])


StartConsumer = Callable[..., AbstractAsyncContextManager[RunningConsumer]]


@pytest.fixture
def stage_change_consumer(
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    publisher: AiokafkaPublisher,
    db: asyncpg.Pool,
) -> StartConsumer:
    """``async with stage_change_consumer(group, consumer_class=...) as running:`` runs the
    notifier's consumer alone (no dispatcher, no rules) as a member of ``group``; at the end
    of the block its task is cancelled and the member leaves the group."""

    @asynccontextmanager
    async def start(
        group: str, *, consumer_class: type[AIOKafkaConsumer] = AIOKafkaConsumer
    ) -> AsyncIterator[RunningConsumer]:
        consumer = consumer_class(
            **consumer_kwargs(kafka_settings, client_id="test", group_id=group)
        )
        worker = StageChangeConsumer(
            consumer=consumer,
            store=PostgresStageChangeStore(db),
            publisher=publisher,
            rejected_topic=topics.rejected,
            retry_backoff_s=0.1,
        )
        consumer.subscribe([topics.stage_changed], listener=worker.listener)
        await consumer.start()
        task = asyncio.create_task(worker.run())
        try:
            yield RunningConsumer(worker=worker, consumer=consumer, task=task)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await consumer.stop()

    return start
