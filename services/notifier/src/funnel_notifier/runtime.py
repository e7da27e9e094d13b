"""Composition root: rules, clients, consumer, dispatcher, wired from settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from funnel_shared.kafka import AiokafkaPublisher, consumer_kwargs, producer_kwargs
from funnel_shared.settings import DatabaseSettings, KafkaSettings, TopicSettings

from funnel_notifier.actions import ActiveRules, Resources, resolve_rules
from funnel_notifier.channels.mail import SmtpConfig
from funnel_notifier.consumer import StageChangeConsumer
from funnel_notifier.dispatcher import Dispatcher
from funnel_notifier.metrics import NotifierMetrics
from funnel_notifier.outbox import OutboxRelay
from funnel_notifier.queue import FollowUpQueue
from funnel_notifier.rules import builtin_rules_dir, load_rules
from funnel_notifier.settings import NotifierSettings
from funnel_notifier.store import PostgresStageChangeStore

__all__ = ["Runtime", "rules_dir", "smtp_config"]

log = logging.getLogger("funnel.notifier")


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Released connections skip asyncpg's reset query (a round trip on every release):
    the notifier keeps no session state (no SET, LISTEN, cursors or session-level
    advisory locks), and asyncpg still rolls back a transaction left open."""


def rules_dir(settings: NotifierSettings) -> Path:
    return settings.rules_dir if settings.rules_dir is not None else builtin_rules_dir()


def smtp_config(settings: NotifierSettings) -> SmtpConfig:
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.smtp_starttls,
        message_id_domain=settings.message_id_domain,
    )


@dataclass
class Runtime:
    """Everything the notifier runs. ``start`` connects; ``stop`` closes in reverse."""

    settings: NotifierSettings
    kafka: KafkaSettings
    topics: TopicSettings
    database: DatabaseSettings
    on_crash: Callable[[BaseException], None] | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    metrics: NotifierMetrics = field(default_factory=NotifierMetrics)

    async def start(self) -> None:
        directory = rules_dir(self.settings)
        loaded = load_rules(directory)  # Bad rule files stop start-up, naming file and field.
        self.pool = await asyncpg.create_pool(
            self.database.dsn, min_size=1, max_size=10, reset=_keep_session
        )
        # One pooled client for every webhook; a dispatcher has at most batch_size
        # attempts in flight, so none waits for a free connection.
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(100, self.settings.batch_size))
        )
        self.producer = AIOKafkaProducer(**producer_kwargs(self.kafka, client_id="notifier"))
        await self.producer.start()
        publisher = AiokafkaPublisher(self.producer)
        self.active: ActiveRules = resolve_rules(
            loaded,
            env=self.env,
            resources=Resources(
                templates_dir=directory / "templates",
                smtp=smtp_config(self.settings),
                http=self.http,
                publisher=publisher,
                retry_after_cap_s=self.settings.retry_after_max_s,
            ),
        )
        for rule_id, why in self.active.disabled.items():
            log.warning("rule %s is disabled: %s", rule_id, why)
        log.info("%d follow-up rule(s) active from %s", len(self.active.rules), directory)
        self.consumer = AIOKafkaConsumer(
            self.topics.stage_changed,
            **consumer_kwargs(self.kafka, client_id="notifier", group_id=self.settings.group_id),
        )
        await self.consumer.start()
        self.store = PostgresStageChangeStore(self.pool)
        self.dispatcher = Dispatcher(
            queue=FollowUpQueue(self.pool),
            outbox=OutboxRelay(pool=self.pool, producer=self.producer, topic=self.topics.followups),
            channels=self.active.channels,
            settings=self.settings,
            metrics=self.metrics,
        )
        self.worker = StageChangeConsumer(
            consumer=self.consumer,
            store=self.store,
            publisher=publisher,
            rejected_topic=self.topics.rejected,
            retry_backoff_s=self.settings.retry_backoff_s,
            rules=self.active.rules,
            metrics=self.metrics,
            on_scheduled=self.dispatcher.wake,
        )
        self.tasks = [
            asyncio.create_task(self.worker.run(), name="stage-change-consumer"),
            asyncio.create_task(self.dispatcher.run(), name="dispatcher"),
        ]
        for task in self.tasks:
            task.add_done_callback(self._crashed)

    def _crashed(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and self.on_crash is not None:
            self.on_crash(task.exception())  # type: ignore[arg-type]

    async def stop(self) -> None:
        if getattr(self, "stopped", False):
            return
        self.stopped = True
        tasks = getattr(self, "tasks", [])
        if tasks:
            self.dispatcher.request_stop()
            await asyncio.wait(tasks[1:], timeout=self.settings.attempt_timeout_s + 5)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for closer in ("consumer", "producer"):
            if hasattr(self, closer):
                await getattr(self, closer).stop()
        if hasattr(self, "http"):
            await self.http.close()
        if hasattr(self, "pool"):
            await self.pool.close()

    async def ready(self) -> str | None:
        """None when ready; else what is missing."""
        try:
            await asyncio.wait_for(self.store.ping(), timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return "database unreachable"
        if not self.worker.assigned:
            return "joining consumer group"
        try:
            await asyncio.wait_for(self.producer.client.fetch_all_metadata(), timeout=5)
        except Exception:
            return "broker unreachable"
        return None
