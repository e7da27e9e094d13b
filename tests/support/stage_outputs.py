"""Stage-engine outputs as the engine publishes them, for tests that feed the projection."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from aiokafka import AIOKafkaProducer
from funnel_shared.events import (
    AnyStageOutput,
    ContactMerged,
    StageBlocked,
    StageChanged,
    StageStalled,
    contact_merged_id,
    merge_id,
    stage_blocked_id,
    stage_change_id,
    stage_stalled_id,
)
from funnel_shared.kafka import encode_model, producer_kwargs
from funnel_shared.settings import KafkaSettings


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


def merged(
    contact: str, anonymous: str, funnel: str, *, stage: str, anonymous_stage: str, at: datetime
) -> ContactMerged:
    """``anonymous`` merged into ``contact``; both stages as the engine reports them."""
    merge = merge_id(merged_contact_id=anonymous, contact_id=contact)
    return ContactMerged(
        id=contact_merged_id(funnel=funnel, merge_id=merge),
        merge_id=merge,
        funnel=funnel,
        funnel_version="v1",
        contact_id=contact,
        merged_contact_id=anonymous,
        current_stage=stage,
        furthest_stage=stage,
        merged_current_stage=anonymous_stage,
        merged_furthest_stage=anonymous_stage,
        cause_message_id=str(uuid.uuid4()),
        event_time=at,
        processed_at=at + timedelta(seconds=1),
    )


def stalled(change: StageChanged, *, after: timedelta, move_to: str | None = None) -> StageStalled:
    """The stall of the stay that ``change`` began."""
    return StageStalled(
        id=stage_stalled_id(
            funnel=change.funnel,
            contact_id=change.contact_id,
            stage=change.to_stage,
            entry_id=change.cause_message_id,
        ),
        funnel=change.funnel,
        funnel_version="v1",
        contact_id=change.contact_id,
        stage=change.to_stage,
        furthest_stage=change.furthest_stage,
        entered_at=change.event_time,
        entry_id=change.cause_message_id,
        stalled_after_seconds=after.total_seconds(),
        move_to=move_to,
        event_time=change.event_time + after,
        processed_at=change.event_time + after + timedelta(seconds=1),
    )


async def publish_outputs(
    settings: KafkaSettings, topic: str, outputs: Sequence[AnyStageOutput]
) -> None:
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
