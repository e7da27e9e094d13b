"""Composition root: rules, clients, consumer, dispatcher, wired from settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from funnel_shared.kafka import AiokafkaPublisher, consumer_kwargs, producer_kwargs
from funnel_shared.settings import DatabaseSettings, KafkaSettings, TopicSettings

from funnel_notifier.actions import ActiveRules, Resources, resolve_rules
from funnel_notifier.channels.mail import SmtpConfig
from funnel_notifier.consumer import StageChangeConsumer
from funnel_notifier.dispatcher import Dispatcher
from funnel_notifier.domain.rules import builtin_rules_dir, load_rules
from funnel_notifier.metrics import NotifierMetrics
from funnel_notifier.postgres.intake import PostgresStageChangeStore
from funnel_notifier.postgres.outbox import OutboxRelay
from funnel_notifier.postgres.queue import PostgresFollowUpQueue
from funnel_notifier.settings import NotifierSettings

__all__ = ["Runtime", "rules_dir", "smtp_config"]

log = logging.getLogger("funnel.notifier")

_CATCH_UP_POLL_S = 0.2  # How often start-up asks for the committed offsets.


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
    """Everything the notifier runs. ``start`` opens each resource and pushes its closing
    onto one exit stack; ``stop`` unwinds it, in reverse, whatever ``start`` got to."""

    settings: NotifierSettings
    kafka: KafkaSettings
    topics: TopicSettings
    database: DatabaseSettings
    on_crash: Callable[[BaseException], None] | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    metrics: NotifierMetrics = field(default_factory=NotifierMetrics)
    _exit: contextlib.AsyncExitStack = field(
        default_factory=contextlib.AsyncExitStack, init=False, repr=False
    )
    _dispatching: bool = field(default=False, init=False, repr=False)

    async def start(self) -> None:
        """Connect and start the loops. If it fails half-way, ``stop`` still closes what
        was opened (the app's lifespan calls it in ``finally``)."""
        directory = rules_dir(self.settings)
        loaded = load_rules(directory)  # Bad rule files stop start-up, naming file and field.
        self.pool = await asyncpg.create_pool(
            self.database.dsn, min_size=1, max_size=10, reset=_keep_session
        )
        self._exit.push_async_callback(self.pool.close)
        # One pooled client for every webhook; a dispatcher has at most batch_size
        # attempts in flight, so none waits for a free connection.
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(100, self.settings.batch_size))
        )
        self._exit.push_async_callback(self.http.close)
        self.producer = AIOKafkaProducer(**producer_kwargs(self.kafka, client_id="notifier"))
        self._exit.push_async_callback(self.producer.stop)  # Also after a failed start.
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
            **consumer_kwargs(self.kafka, client_id="notifier", group_id=self.settings.group_id),
        )
        self.store = PostgresStageChangeStore(self.pool)
        self.dispatcher = Dispatcher(
            queue=PostgresFollowUpQueue(self.pool),
            outbox=OutboxRelay(pool=self.pool, publisher=publisher, topic=self.topics.followups),
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
            revoke_wait_s=self.settings.revoke_wait_s,
        )
        # The listener commits what is stored when a rebalance takes partitions away.
        self.consumer.subscribe([self.topics.stage_changed], listener=self.worker.listener)
        self._exit.push_async_callback(self.consumer.stop)
        await self.consumer.start()
        consuming = self._run(self.worker.run(), name="stage-change-consumer")
        self._exit.push_async_callback(_cancel, consuming)
        dispatching = self._run(self._dispatch_after_catch_up(), name="dispatcher")
        self._exit.push_async_callback(self._stop_dispatcher, dispatching)

    async def _dispatch_after_catch_up(self) -> None:
        """Run the dispatcher once the stage changes already on Kafka at start-up are
        stored (bounded by ``startup_catch_up_max_s``).

        After a restart or an outage the backlog may hold a contact's later stage change;
        a follow-up it cancels (``unless: moved_on``) must not go out just because the
        dispatcher claimed it before the consumer got that far."""
        limit_s = self.settings.startup_catch_up_max_s
        if limit_s > 0:
            try:
                await asyncio.wait_for(self._backlog_stored(), limit_s)
            except TimeoutError:
                log.warning(
                    "the stage-change backlog was not stored within %gs; dispatching anyway",
                    limit_s,
                )
            except Exception as exc:  # The broker's answer is a hint, never a reason to stop.
                log.warning("could not measure the backlog (%r); dispatching anyway", exc)
        self._dispatching = True
        await self.dispatcher.run()

    async def _backlog_stored(self) -> None:
        """Return once the committed offset of each partition assigned at start-up has
        reached the end offset it had then (the consumer commits only what it stored)."""
        # Polled: the group join and the commits happen in the consumer's own loop.
        partitions: list[TopicPartition] = []
        while not partitions:
            partitions = sorted(self.consumer.assignment())
            if not partitions:
                await asyncio.sleep(_CATCH_UP_POLL_S)
        ends = await self.consumer.end_offsets(partitions)
        for tp in partitions:
            stored = False
            while not stored:
                stored = ((await self.consumer.committed(tp)) or 0) >= ends[tp]
                if not stored:
                    await asyncio.sleep(_CATCH_UP_POLL_S)
        backlog = ", ".join(f"{tp.partition}:{ends[tp]}" for tp in partitions)
        log.info("stage-change backlog stored (end offsets %s); dispatching", backlog)

    def _run(self, loop: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(loop, name=name)
        task.add_done_callback(self._crashed)
        return task

    def _crashed(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and self.on_crash is not None:
            self.on_crash(task.exception())  # type: ignore[arg-type]

    async def _stop_dispatcher(self, task: asyncio.Task[None]) -> None:
        """Let the attempts in flight finish (and be recorded) before anything closes."""
        if not self._dispatching:  # Still waiting for the backlog: nothing in flight.
            await _cancel(task)
            return
        self.dispatcher.request_stop()
        await asyncio.wait([task], timeout=self.settings.attempt_timeout_s + 5)
        await _cancel(task)

    async def stop(self) -> None:
        """Stop the loops, then close the consumer, producer, HTTP client and pool. Safe to
        call more than once, and after a failed or missing ``start``."""
        await self._exit.aclose()

    async def ready(self) -> str | None:
        """None when ready; else what is missing."""
        try:
            await asyncio.wait_for(self.store.ping(), timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return "database unreachable"
        if self.worker.problem is not None:
            return self.worker.problem  # E.g. the database is read-only.
        if not self.worker.assigned:
            return "joining consumer group"
        try:
            await asyncio.wait_for(self.producer.client.fetch_all_metadata(), timeout=5)
        except Exception:
            return "broker unreachable"
        return None


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
