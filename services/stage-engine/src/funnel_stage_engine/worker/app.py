"""The faust app: composition of settings, topics, the state table, the handler and pages.

The agent takes records in batches: a record joins the current batch while
more records are already waiting in the stream's queue, up to
``batch_max_events``. So a busy stream is processed in large batches and a
quiet one record by record, without waiting for a batch to fill. Records are
acknowledged by hand (``noack``), only after the handler has returned for the
whole batch: a record whose processing was cut short (a publish failure, a
rebalance, a stop) is never committed and comes back. Faust's own auto-ack
would ack it on the way out. (Faust's ``take()`` would wait for a full batch
or a timeout, adding that wait to every quiet record's latency.) See
``worker/handler.py`` for the crash-safety order of publish and store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from faust.types import TableT
from funnel_shared.settings import DatabaseSettings, KafkaSettings, TopicSettings

from funnel_stage_engine.domain.contact import Evaluate, Position
from funnel_stage_engine.domain.definitions import Funnel
from funnel_stage_engine.metrics import StageEngineMetrics
from funnel_stage_engine.read.projection import Projection
from funnel_stage_engine.settings import StageEngineSettings
from funnel_stage_engine.worker.adapters import FaustPublisher, TableStateStore, consumer_lag
from funnel_stage_engine.worker.batch import Inbound
from funnel_stage_engine.worker.batching import HeldBatch
from funnel_stage_engine.worker.deadlines import DeadlineIndex
from funnel_stage_engine.worker.durable_table import DurableTable, StateNotWritten
from funnel_stage_engine.worker.faust_internals import TunedApp
from funnel_stage_engine.worker.handler import ContactEventHandler
from funnel_stage_engine.worker.serving import attach_http_and_projection
from funnel_stage_engine.worker.ticks import send_ticks

__all__ = ["StageEngineApp", "commands_topic_name", "create_app"]

log = logging.getLogger("funnel.stage_engine")


class StageEngineApp(TunedApp):
    """A faust app that also carries the pieces tests want to reach."""

    handler: ContactEventHandler
    deadlines: DeadlineIndex
    metrics: StageEngineMetrics
    evaluate_contact_events: Any
    contact_to_state: TableT[str, Any]
    projection: Projection
    held: HeldBatch
    agent_stream: Any = None  # The agent's stream (manual acks), once it runs.


def create_app(
    *,
    settings: StageEngineSettings,
    kafka: KafkaSettings,
    topics: TopicSettings,
    funnels: Sequence[Funnel],
    evaluate: Evaluate | None = None,
    database: DatabaseSettings | None = None,
) -> StageEngineApp:
    app = StageEngineApp(settings.app_id, **_faust_config(settings, kafka))
    app.fetch_max_wait_ms = kafka.fetch_max_wait_ms
    app.producer_buffer_max = max(100, 2 * settings.batch_max_events)
    commands_name = commands_topic_name(settings)
    # The internal command topic is created by ``main`` (``commands_topic_name``) with the
    # partitions of the contact-events topic, so a contact's events and commands share a
    # partition number. Commands and stall ticks are sent through the handler's publisher.
    source_topic = app.topic(
        topics.contact_events, commands_name, key_serializer="raw", value_serializer="raw"
    )
    app.contact_to_state = app.Table("contact_to_state", default=None, partitions=kafka.partitions)
    states = app.contact_to_state
    assert isinstance(states, DurableTable)  # The app's ``Table`` setting (_faust_config).
    app.deadlines = DeadlineIndex(
        partitions=kafka.partitions,
        idle_after_s=settings.idle_partition_after_s,
        lateness_s=settings.idle_lateness_s,
        future_tolerance_s=settings.stall_clock_tolerance_s,
    )
    app.metrics = StageEngineMetrics(
        lag=lambda: consumer_lag(app, topics.contact_events),
        stall=lambda: (agent_waiting_s(app), settings.agent_stall_after_s),
    )
    app.handler = ContactEventHandler(
        funnels=funnels,
        states=TableStateStore(app.contact_to_state),
        publisher=FaustPublisher(lambda: app.producer),
        topics=topics,
        metrics=app.metrics,
        commands_topic=commands_name,
        deadlines=app.deadlines,
        limits=settings.state_limits(),
        max_record_bytes=settings.max_record_bytes,
    )
    if evaluate is not None:
        app.handler.evaluate = evaluate

    async def flush_records(events: Sequence[Any]) -> None:
        records = [
            Inbound(
                key=e.key,
                value=e.value,
                command=e.message.topic == commands_name,
                origin=e,
                position=Position.of(e.message.topic, e.message.partition, e.message.offset),
            )
            for e in events
        ]
        try:
            await app.handler.handle_batch(records)
            # The batch's states acknowledged by the broker before its records are
            # acked: faust commits only acked records (worker/durable_table.py).
            await states.written(timeout_s=settings.state_write_timeout_s)
        except StateNotWritten as exc:
            log.critical("cannot store contact states, stopping the worker: %s", exc)
            await app.crash(exc)
            raise
        except Exception as exc:
            # Only a failed publish gets here. Stop without acking: the batch is
            # processed again after the restart, which the ordering makes safe.
            log.critical("cannot publish, stopping the worker: %r", exc)
            await app.crash(exc)
            raise
        for e in events:
            await app.agent_stream.ack(e)

    app.held = HeldBatch(flush_records)

    @app.agent(source_topic)
    async def evaluate_contact_events(stream: Any) -> None:
        manual = stream.noack()
        app.agent_stream = manual
        async for event in manual.events():
            app.held.add(event)
            if len(app.held) < settings.batch_max_events and not manual.channel.empty():
                continue  # More records have arrived already: they join this batch.
            try:
                await app.held.flush()
            except Exception:
                return  # The app is crashing (logged above).

    async def watch_held_batch() -> None:
        try:
            await app.held.watch()
        except Exception:
            return  # The app is crashing (logged in flush_records).

    # Bounds the hold of a batch the agent cannot finish (worker/batching.py).
    app.timer(interval=settings.held_batch_watch_s)(watch_held_batch)

    app.evaluate_contact_events = evaluate_contact_events
    _add_stall_timer(app, settings, topics.contact_events, commands_name)
    app.projection = attach_http_and_projection(
        app,
        settings=settings,
        kafka=kafka,
        topics=topics,
        database=database,
        funnels=funnels,
        metrics=app.metrics,
        liveness=lambda: agent_problem(app, settings),
    )
    return app


def agent_waiting_s(app: StageEngineApp) -> float:
    """Seconds the agent has finished no batch while records wait for it (0: none wait)."""
    held: HeldBatch | None = getattr(app, "held", None)
    if held is None:
        return 0.0
    stream = app.agent_stream
    queued = stream is not None and not stream.channel.empty()
    return held.stalled_for(waiting=queued)


def agent_problem(app: StageEngineApp, settings: StageEngineSettings) -> str:
    """Why the worker should be restarted ("" if it should not): its agent is stuck."""
    waiting = agent_waiting_s(app)
    if waiting > settings.agent_stall_after_s:
        return f"agent stalled: records have waited {waiting:.0f}s with no batch finished"
    return ""


def commands_topic_name(settings: StageEngineSettings) -> str:
    """The internal command topic (created by ``main`` before the worker subscribes)."""
    return f"{settings.app_id}-contact-commands"


def _add_stall_timer(
    app: StageEngineApp, settings: StageEngineSettings, source: str, commands_topic: str
) -> None:
    rebalanced = {"pending": True}

    async def _rebuild_later(sender: Any, *args: Any, **kwargs: Any) -> None:
        # Sent once the tables are recovered: the next timer run re-reads them.
        rebalanced["pending"] = True

    app.on_rebalance_complete.connect(_rebuild_later)  # type: ignore[arg-type]

    async def send_due_ticks() -> None:
        recovery = getattr(app.tables, "recovery", None)
        if app.rebalancing or recovery is None or not recovery.completed.is_set():
            return
        assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic == source}
        if rebalanced["pending"]:
            rebalanced["pending"] = False
            app.deadlines.rebuild(app.contact_to_state.items(), assigned)
        # Through the handler's publisher, like every other record the worker sends;
        # awaited, and a tick not acknowledged is sent again at the next check.
        await send_ticks(
            app.handler.publisher,
            app.deadlines.due(assigned),
            commands_topic=commands_topic,
            deadlines=app.deadlines,
        )

    app.timer(interval=settings.stall_check_interval_s)(send_due_ticks)


def _faust_config(settings: StageEngineSettings, kafka: KafkaSettings) -> dict[str, Any]:
    return {
        "broker": [f"kafka://{server}" for server in kafka.bootstrap_servers.split(",")],
        "store": settings.store,
        "datadir": str(settings.data_dir),
        "web_host": settings.host,
        "web_port": settings.port,
        "web_in_thread": False,
        "topic_partitions": kafka.partitions,
        "topic_replication_factor": kafka.replication_factor,
        "producer_acks": -1,
        "producer_max_batch_size": kafka.producer_max_batch_size,
        "producer_linger_ms": kafka.producer_linger_ms,
        "broker_client_id": f"{kafka.client_id}-stage-engine",
        "broker_session_timeout": kafka.session_timeout_ms / 1000,
        "broker_heartbeat_interval": kafka.heartbeat_interval_ms / 1000,
        "broker_request_timeout": max(kafka.request_timeout_ms, kafka.session_timeout_ms + 5000)
        / 1000,
        "broker_commit_interval": settings.commit_interval_s,
        "consumer_auto_offset_reset": "earliest",
        # Faust's public setting for the class of app.Table(): one whose changelog
        # writes the agent can await.
        "Table": DurableTable,
    }
