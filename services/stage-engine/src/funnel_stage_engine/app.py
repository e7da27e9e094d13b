"""The faust app: decode contact events, call the domain, publish stage changes.

A faust agent that raises acks and drops its event, so every event is
handled inside its own ``try``: what cannot be processed is dead-lettered to
the rejected topic with the reason, and the partition keeps moving.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import faust
from funnel_shared.events import ContactEvent
from funnel_shared.kafka import OutboundRecord, encode_model, rejected_record
from funnel_shared.settings import KafkaSettings, TopicSettings

from funnel_stage_engine.domain import evaluate
from funnel_stage_engine.settings import StageEngineSettings

__all__ = ["create_app"]

log = logging.getLogger("funnel.stage_engine")

SOURCE = "/funnel/stage-engine"


def create_app(
    *, settings: StageEngineSettings, kafka: KafkaSettings, topics: TopicSettings
) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in kafka.bootstrap_servers.split(",")],
        store="memory://",
        datadir=str(settings.data_dir),
        web_host=settings.host,
        web_port=settings.port,
        web_in_thread=False,
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        producer_acks=-1,
        producer_max_batch_size=kafka.producer_max_batch_size,
        producer_linger_ms=kafka.producer_linger_ms,
        broker_client_id=f"{kafka.client_id}-stage-engine",
        broker_session_timeout=kafka.session_timeout_ms / 1000,
        broker_heartbeat_interval=kafka.heartbeat_interval_ms / 1000,
        broker_request_timeout=max(kafka.request_timeout_ms, kafka.session_timeout_ms + 5000)
        / 1000,
        consumer_auto_offset_reset="earliest",
    )

    contact_events_topic = app.topic(
        topics.contact_events, key_serializer="raw", value_serializer="raw"
    )
    stage_changed_topic = app.topic(
        topics.stage_changed, key_serializer="raw", value_serializer="raw"
    )
    rejected_topic = app.topic(topics.rejected, key_serializer="raw", value_serializer="raw")
    contact_to_stages = app.Table("contact_to_stages", default=dict, partitions=kafka.partitions)
    ready = {"assigned": False}

    @app.agent(contact_events_topic)
    async def evaluate_contact_events(stream: Any) -> None:
        async for event in stream.events():
            raw: bytes = event.value
            try:
                contact_event = ContactEvent.model_validate_json(raw)
                key = contact_event.contact_key
                stages, changes = evaluate(
                    contact_to_stages[key], contact_event, processed_at=datetime.now(UTC)
                )
                contact_to_stages[key] = stages
                for change in changes:
                    record = encode_model(
                        change,
                        key=change.contact_id,
                        event_id=change.id,
                        event_type="funnel.stage_changed",
                        source=SOURCE,
                        time=change.processed_at,
                    )
                    await _send(stage_changed_topic, record)
            except Exception as exc:
                log.warning("rejecting event at offset %s: %s", event.message.offset, exc)
                dead_letter = rejected_record(
                    service="stage-engine",
                    origin=topics.contact_events,
                    key=event.key.decode("utf-8", "backslashreplace") if event.key else None,
                    original=raw,
                    errors=[f"{type(exc).__name__}: {exc}"],
                )
                await _send(rejected_topic, dead_letter)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        if ready["assigned"] and not app.rebalancing:
            return web.json({"status": "ready"})
        return web.json({"status": "joining consumer group"}, status=503)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # faust types want the signal arg
    async def on_assigned(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        ready["assigned"] = True

    return app


async def _send(topic: Any, record: OutboundRecord) -> None:
    await topic.send(key=record.key.encode(), value=record.value, headers=record.headers)
