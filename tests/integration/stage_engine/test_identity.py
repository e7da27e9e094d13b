"""Identity stitching and stalls through the real worker on a real broker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from funnel_shared.events import (
    ContactMerged,
    RejectedRecord,
    StageBlocked,
    StageChanged,
    StageOutput,
    StageStalled,
    merge_id,
)
from funnel_shared.settings import KafkaSettings
from funnel_stage_engine.worker.deadlines import partition_of
from pydantic import TypeAdapter

from tests.integration.conftest import StageEngineFactory
from tests.support.contact_events import START, contact_event, produce
from tests.support.kafka_reader import read_records

pytestmark = pytest.mark.integration

JOURNEY = """
name: journey
stages: [visitor, interested, lead, qualified]
rules:
  - {id: pricing-3x, to: qualified, match: {type: page, name: Pricing},
     count: {at_least: 3, within: 7d}}
  - {id: gave-email, to: lead, match: {traits: {email: {exists: true}}}}
  - {id: pricing, to: interested, match: {type: page, name: Pricing}}
  - {id: visit, to: visitor, match: {type: page}}
"""
BROWSING = """
name: browsing
stages: [browsed, priced]
rules:
  - {id: pricing, to: priced, match: {type: page, name: Pricing}}
  - {id: page, to: browsed, match: {type: page}}
"""
TRIAL = """
name: trial
stages: [trial, dormant, paid]
rules:
  - {id: sign-up, to: trial, match: {event: Signed Up}}
  - {id: order, to: paid, match: {event: Order Completed}}
stalls:
  - {stage: trial, after: 20s, move_to: dormant}
"""

outputs: TypeAdapter[Any] = TypeAdapter(StageOutput)


def _funnels(tmp_path: Path, **files: str) -> Path:
    directory = tmp_path / "funnels"
    directory.mkdir()
    for name, text in files.items():
        (directory / f"{name}.yaml").write_text(text)
    return directory


def _ids_on_different_partitions(partitions: int) -> tuple[str, str]:
    user = f"zoe-{uuid.uuid4().hex[:8]}@example.com"
    for _ in range(1000):
        anonymous = f"anon-{uuid.uuid4().hex}"
        if partition_of(anonymous, partitions) != partition_of(user, partitions):
            return anonymous, user
    raise AssertionError("no anonymousId on another partition in 1000 tries")


def _anonymous(anonymous_id: str, name: str, at: datetime) -> Any:
    event = contact_event("x", "page", at=at, name=name)
    return event.model_copy(update={"user_id": None, "anonymous_id": anonymous_id})


async def _read(kafka: KafkaSettings, topic: str, expected: int) -> list[Any]:
    records = await asyncio.to_thread(
        read_records, kafka.bootstrap_servers, topic, expected=expected, timeout_s=90
    )
    return [outputs.validate_json(record.value) for record in records]


def _summary(output: Any) -> tuple[str, ...]:
    if isinstance(output, StageChanged):
        return (
            "changed",
            output.contact_id,
            output.funnel,
            str(output.from_stage),
            output.to_stage,
        )
    if isinstance(output, ContactMerged):
        return ("merged", output.contact_id, output.funnel, output.current_stage)
    assert not isinstance(output, StageBlocked)
    return ("stalled", output.contact_id, output.funnel, output.stage)


async def test_an_anonymous_visitor_who_identifies_brings_their_history_along(
    stage_engine_worker: StageEngineFactory,
    kafka_settings: KafkaSettings,
    topic_env: dict[str, str],
    tmp_path: Path,
) -> None:
    anonymous, user = _ids_on_different_partitions(kafka_settings.partitions)
    worker = stage_engine_worker(
        STAGE_ENGINE_FUNNELS_DIR=str(_funnels(tmp_path, journey=JOURNEY, browsing=BROWSING))
    )
    worker.start()
    await asyncio.to_thread(worker.wait_ready)
    browsing = [
        _anonymous(anonymous, "Home", START),
        _anonymous(anonymous, "Pricing", START + timedelta(minutes=1)),
        _anonymous(anonymous, "Pricing", START + timedelta(minutes=2)),
    ]
    identify = contact_event(
        user,
        "identify",
        at=START + timedelta(minutes=3),
        anonymousId=anonymous,
        traits={"email": user},
    )
    topic = topic_env["TOPIC_CONTACT_EVENTS"]
    await produce(kafka_settings, topic, [*browsing, identify])
    before = await _read(kafka_settings, topic_env["TOPIC_STAGE_CHANGED"], 8)
    # After the merge, an event keyed on the anonymous partition counts for the user.
    later = _anonymous(anonymous, "Pricing", START + timedelta(minutes=4))
    await produce(kafka_settings, topic, [later])
    everything = await _read(kafka_settings, topic_env["TOPIC_STAGE_CHANGED"], 9)

    assert len(before) == 8, worker.log_tail()
    assert sorted(map(_summary, everything)) == sorted(
        [
            ("changed", anonymous, "journey", "None", "visitor"),
            ("changed", anonymous, "journey", "visitor", "interested"),
            ("changed", anonymous, "browsing", "None", "browsed"),
            ("changed", anonymous, "browsing", "browsed", "priced"),
            ("changed", user, "journey", "None", "lead"),
            ("merged", user, "journey", "lead"),
            ("merged", user, "browsing", "priced"),
            ("changed", user, "browsing", "None", "priced"),
            # Two anonymous pricing views and this one: the counters added up.
            ("changed", user, "journey", "lead", "qualified"),
        ]
    ), worker.log_tail()
    the_merge = merge_id(merged_contact_id=anonymous, contact_id=user)
    merged = [output for output in everything if isinstance(output, ContactMerged)]
    assert {(m.merge_id, m.merged_contact_id, m.cause_message_id) for m in merged} == {
        (the_merge, anonymous, identify.message_id)
    }
    [by_merge] = [o for o in everything if isinstance(o, StageChanged) and o.cause_kind == "merge"]
    assert (by_merge.cause_message_id, by_merge.traits) == (the_merge, {"email": user})
    [qualified] = [o for o in everything if _summary(o)[-1] == "qualified"]
    assert qualified.cause_message_id == later.message_id


async def test_an_alias_between_two_user_ids_is_rejected_not_applied(
    stage_engine_worker: StageEngineFactory,
    kafka_settings: KafkaSettings,
    topic_env: dict[str, str],
    tmp_path: Path,
) -> None:
    first, second = f"user-{uuid.uuid4().hex}", f"user-{uuid.uuid4().hex}"
    worker = stage_engine_worker(STAGE_ENGINE_FUNNELS_DIR=str(_funnels(tmp_path, journey=JOURNEY)))
    worker.start()
    await asyncio.to_thread(worker.wait_ready)
    events = [
        contact_event(first, "page", name="Pricing"),
        contact_event(second, "alias", at=START + timedelta(minutes=1), previousId=first),
    ]
    await produce(kafka_settings, topic_env["TOPIC_CONTACT_EVENTS"], events)

    records = await asyncio.to_thread(
        read_records, kafka_settings.bootstrap_servers, topic_env["TOPIC_REJECTED"], expected=1
    )
    [rejected] = [RejectedRecord.model_validate_json(record.value) for record in records]
    assert rejected.key == first, worker.log_tail()
    assert "two identified contacts are never merged" in rejected.errors[0]


async def test_a_contact_that_stops_progressing_stalls_exactly_once_across_a_restart(
    stage_engine_worker: StageEngineFactory,
    kafka_settings: KafkaSettings,
    topic_env: dict[str, str],
    tmp_path: Path,
) -> None:
    stuck, moving = f"user-{uuid.uuid4().hex}", f"user-{uuid.uuid4().hex}"
    worker = stage_engine_worker(
        STAGE_ENGINE_FUNNELS_DIR=str(_funnels(tmp_path, trial=TRIAL)),
        STAGE_ENGINE_STALL_CHECK_INTERVAL_S="0.3",
        STAGE_ENGINE_IDLE_PARTITION_AFTER_S="1",
        STAGE_ENGINE_IDLE_LATENESS_S="0",
    )
    worker.start()
    await asyncio.to_thread(worker.wait_ready)
    now = datetime.now(UTC)
    events = [
        contact_event(stuck, "track", "Signed Up", at=now),
        contact_event(moving, "track", "Signed Up", at=now),
        contact_event(moving, "track", "Order Completed", at=now + timedelta(seconds=1)),
    ]
    await produce(kafka_settings, topic_env["TOPIC_CONTACT_EVENTS"], events)
    entered = await _read(kafka_settings, topic_env["TOPIC_STAGE_CHANGED"], 3)
    # Stop while the deadline is pending: the restarted worker must fire it.
    worker.stop()
    assert len(entered) == 3 and not any(isinstance(o, StageStalled) for o in entered)
    worker.start()
    await asyncio.to_thread(worker.wait_ready)

    await _read(kafka_settings, topic_env["TOPIC_STAGE_CHANGED"], 5)
    # A last move of the stalled contact: a second stall would have come before it.
    marker = contact_event(stuck, "track", "Order Completed", at=datetime.now(UTC))
    await produce(kafka_settings, topic_env["TOPIC_CONTACT_EVENTS"], [marker])
    final = await _read(kafka_settings, topic_env["TOPIC_STAGE_CHANGED"], 6)
    assert sorted(map(_summary, final)) == sorted(
        [
            ("changed", stuck, "trial", "dormant", "paid"),
            ("changed", stuck, "trial", "None", "trial"),
            ("changed", moving, "trial", "None", "trial"),
            ("changed", moving, "trial", "trial", "paid"),
            ("stalled", stuck, "trial", "trial"),
            ("changed", stuck, "trial", "trial", "dormant"),
        ]
    ), worker.log_tail()
    [stall] = [o for o in final if isinstance(o, StageStalled)]
    assert stall.event_time == now + timedelta(seconds=20)
    [dormant] = [o for o in final if isinstance(o, StageChanged) and o.to_stage == "dormant"]
    assert (dormant.cause_kind, dormant.cause_message_id) == ("stall", stall.id)
