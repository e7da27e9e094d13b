"""The faust app: composition of settings, topics, the state table, the handler and pages.

Events are acknowledged by hand (``noack``), and only after the handler has
returned: an event whose processing was cut short (a publish failure, a
rebalance, a stop) is never committed and comes back. Faust's own auto-ack
would ack it on the way out. See ``handler.py`` for the crash-safety order of
publish and store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import faust
from faust.types import TableT, TopicT
from funnel_shared.settings import DatabaseSettings, KafkaSettings, TopicSettings

from funnel_stage_engine.adapters import FaustPublisher, TableStateStore, consumer_lag
from funnel_stage_engine.definitions import Funnel
from funnel_stage_engine.handler import ContactEventHandler, Evaluate
from funnel_stage_engine.metrics import StageEngineMetrics
from funnel_stage_engine.projection import Projection
from funnel_stage_engine.serving import attach_http_and_projection
from funnel_stage_engine.settings import StageEngineSettings

__all__ = ["StageEngineApp", "create_app"]

log = logging.getLogger("funnel.stage_engine")


class StageEngineApp(faust.App):
    """A faust app that also carries the pieces tests want to reach."""

    handler: ContactEventHandler
    metrics: StageEngineMetrics
    evaluate_contact_events: Any
    contact_to_state: TableT[str, Any]
    projection: Projection


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
    contact_events_topic = _raw_topic(app, topics.contact_events)
    outbound = {name: _raw_topic(app, name) for name in (topics.stage_changed, topics.rejected)}
    app.contact_to_state = app.Table("contact_to_state", default=None, partitions=kafka.partitions)
    app.metrics = StageEngineMetrics(lag=lambda: consumer_lag(app, topics.contact_events))
    app.handler = ContactEventHandler(
        funnels=funnels,
        states=TableStateStore(app.contact_to_state),
        publisher=FaustPublisher(outbound),
        topics=topics,
        metrics=app.metrics,
    )
    if evaluate is not None:
        app.handler.evaluate = evaluate

    @app.agent(contact_events_topic)
    async def evaluate_contact_events(stream: Any) -> None:
        manual = stream.noack()
        async for event in manual.events():
            try:
                await app.handler.handle(key=event.key, value=event.value)
            except Exception as exc:
                # Only a failed publish gets here. Stop without acking: the event is
                # processed again after the restart, which the ordering makes safe.
                log.critical("cannot publish, stopping the worker: %r", exc)
                await app.crash(exc)
                return
            await manual.ack(event)

    app.evaluate_contact_events = evaluate_contact_events
    app.projection = attach_http_and_projection(
        app,
        settings=settings,
        kafka=kafka,
        topics=topics,
        database=database,
        funnels=funnels,
        metrics=app.metrics,
    )
    return app


def _raw_topic(app: faust.App, name: str) -> TopicT:
    # Raw bytes in and out: the handler decodes and encodes with the shared models.
    return app.topic(name, key_serializer="raw", value_serializer="raw")


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
    }
