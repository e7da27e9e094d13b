"""Stage-engine outputs as the engine publishes them, for tests that feed the projection."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from aiokafka import AIOKafkaProducer
from funnel_shared.events import StageBlocked, StageChanged, stage_blocked_id, stage_change_id
from funnel_shared.kafka import encode_model, producer_kwargs
from funnel_shared.settings import KafkaSettings

Output = StageChanged | StageBlocked


def journey(
    contact: str,
    funnel: str,
    moves: Sequence[tuple[str, datetime]],
    *,
    stages: Sequence[str],
    version: str = "v1",
) -> list[StageChanged]:
    """One contact's stage changes, each ``(to stage, event time)``, from outside the funnel."""
    changes: list[StageChanged] = []
    previous: str | None = None
    furthest = -1
    for to_stage, at in moves:
        message_id = str(uuid.uuid4())
        furthest = max(furthest, stages.index(to_stage))
        changes.append(
            StageChanged(
                id=stage_change_id(
                    funnel=funnel, contact_id=contact, message_id=message_id, to_stage=to_stage
                ),
                funnel=funnel,
                funnel_version=version,
                contact_id=contact,
                from_stage=previous,
                to_stage=to_stage,
                furthest_stage=stages[furthest],
                rule_id=f"rule-{to_stage}",
                cause_message_id=message_id,
                event_time=at,
                processed_at=at + timedelta(seconds=1),
                traits={"email": f"{contact}@example.com"},
            )
        )
        previous = to_stage
    return changes


def blocked(
    contact: str, funnel: str, *, current: str, attempted: str, at: datetime
) -> StageBlocked:
    message_id = str(uuid.uuid4())
    return StageBlocked(
        id=stage_blocked_id(
            funnel=funnel, contact_id=contact, message_id=message_id, attempted_stage=attempted
        ),
        funnel=funnel,
        funnel_version="v1",
        contact_id=contact,
        current_stage=current,
        attempted_stage=attempted,
        rule_id=f"rule-{attempted}",
        cause_message_id=message_id,
        event_time=at,
        processed_at=at + timedelta(seconds=1),
    )


async def publish_outputs(settings: KafkaSettings, topic: str, outputs: Sequence[Output]) -> None:
    """Send in order, keyed by contact (the engine's partitioning), and wait for every ack."""
    producer = AIOKafkaProducer(**producer_kwargs(settings, client_id="test-outputs"))
    await producer.start()
    try:
        for output in outputs:
            record = encode_model(
                output,
                key=output.contact_id,
                event_id=output.id,
                event_type=f"funnel.{output.kind}.v1",
                source="/funnel/stage-engine/test",
                time=output.processed_at,
            )
            await producer.send_and_wait(
                topic, key=record.key.encode(), value=record.value, headers=record.headers
            )
    finally:
        await producer.stop()
