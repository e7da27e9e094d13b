"""Hostile contact events against a real worker and broker: a record's content fails only itself.

Each test produces straight to the contact-events topic (as if ingest's own
bounds were bypassed), then later contacts on the same partition, and checks
that the bad input is dead-lettered with its reason, the later contacts flow,
and the worker process is the one that started.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from funnel_shared.events import RejectedRecord, StageChanged, StageStalled
from funnel_shared.settings import KafkaSettings
from funnel_stage_engine.worker.deadlines import partition_of
from pydantic import TypeAdapter

from tests.integration.conftest import StageEngineFactory
from tests.support.contact_events import contact_event, produce
from tests.support.kafka_reader import read_all, read_records

pytestmark = pytest.mark.integration

FUNNEL = """
name: signup
ordering: forward
stages: [visitor, lead]
rules:
  - {id: signed-up, to: lead, match: {event: Signed Up}}
stalls:
  - {stage: lead, after: 1h}
"""
outputs: TypeAdapter[StageChanged | StageStalled] = TypeAdapter(StageChanged | StageStalled)


def _funnels_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "funnels"
    directory.mkdir()
    (directory / "signup.yaml").write_text(FUNNEL)
    return directory


def _same_partition(contact: str, partitions: int, count: int) -> list[str]:
    """``count`` new contact ids whose records land on ``contact``'s partition."""
    wanted = partition_of(contact, partitions)
    found: list[str] = []
    while len(found) < count:
        candidate = f"later-{uuid.uuid4().hex}"
        if partition_of(candidate, partitions) == wanted:
            found.append(candidate)
    return found


async def _stage_records(
    kafka: KafkaSettings, topic: str, expected: int
) -> list[StageChanged | StageStalled]:
    records = await asyncio.to_thread(
        read_records, kafka.bootstrap_servers, topic, expected=expected, timeout_s=120
    )
    return [outputs.validate_json(record.value) for record in records]


async def test_a_megabyte_of_traits_is_dead_lettered_and_later_contacts_flow_on_the_same_worker(
    stage_engine_worker: StageEngineFactory,
    kafka_settings: KafkaSettings,
    topic_env: dict[str, str],
    tmp_path: Path,
) -> None:
    greedy = f"greedy-{uuid.uuid4().hex}"
    later = _same_partition(greedy, kafka_settings.partitions, 5)
    now = datetime.now(UTC)
    # 40 identify calls of about 25 KB of new traits each: about 1 MB in all.
    identifies = [
        contact_event(greedy, "identify", at=now, traits={f"t{n}": f"{n}" * 25_000})
        for n in range(40)
    ]
    signed_up = contact_event(greedy, "track", "Signed Up", at=now)
    followers = [contact_event(c, "track", "Signed Up", at=now) for c in later]
    worker = stage_engine_worker(STAGE_ENGINE_FUNNELS_DIR=str(_funnels_dir(tmp_path)))
    worker.start()
    await asyncio.to_thread(worker.wait_ready)
    assert worker.process is not None
    pid = worker.process.pid

    await produce(
        kafka_settings, topic_env["TOPIC_CONTACT_EVENTS"], [*identifies, signed_up, *followers]
    )

    changes = await _stage_records(kafka_settings, topic_env["TOPIC_STAGE_CHANGED"], 6)
    assert [(c.contact_id, c.to_stage) for c in changes if isinstance(c, StageChanged)] == [
        (contact, "lead") for contact in [greedy, *later]
    ], worker.log_tail()
    # The greedy contact kept its last good state: the first identify's traits only.
    assert set(changes[0].traits) == {"t0"}
    dead = await asyncio.to_thread(
        read_records,
        kafka_settings.bootstrap_servers,
        topic_env["TOPIC_REJECTED"],
        expected=39,
        timeout_s=120,
    )
    letters = [RejectedRecord.model_validate_json(record.value) for record in dead]
    assert len(letters) == 39
    assert {letter.key for letter in letters} == {greedy}
    assert all(letter.errors[0].startswith("StateLimitExceeded: ") for letter in letters)
    assert [letter.original for letter in letters] == [
        event.model_dump_json() for event in identifies[1:]
    ]
    assert worker.process.poll() is None and worker.process.pid == pid, worker.log_tail()


async def test_an_event_dated_in_the_year_9999_fires_no_stall_for_other_contacts(
    stage_engine_worker: StageEngineFactory,
    kafka_settings: KafkaSettings,
    topic_env: dict[str, str],
    tmp_path: Path,
) -> None:
    control = f"control-{uuid.uuid4().hex}"
    recent, future = (
        _same_partition(control, kafka_settings.partitions, 4)[:3],
        _same_partition(control, kafka_settings.partitions, 1)[0],
    )
    now = datetime.now(UTC)
    # Seconds ago: their stalls are an hour away. The control contact's stall is due ten
    # seconds from now: only a partition clock that reaches the wall clock (the 9999 event,
    # held to the wall clock plus its tolerance) fires it, as the partition never idles here.
    # It is noted last: without the clamp the others' stall ticks would be sent before its
    # own, on the same partition, and their stalls published before its stall.
    events = [
        *(contact_event(c, "track", "Signed Up", at=now - timedelta(seconds=5)) for c in recent),
        contact_event(
            control, "track", "Signed Up", at=now - timedelta(hours=1) + timedelta(seconds=10)
        ),
    ]
    hostile = contact_event(future, "page", at=datetime(9999, 12, 1, tzinfo=UTC))
    worker = stage_engine_worker(
        STAGE_ENGINE_FUNNELS_DIR=str(_funnels_dir(tmp_path)),
        STAGE_ENGINE_IDLE_PARTITION_AFTER_S="3600",
    )
    worker.start()
    await asyncio.to_thread(worker.wait_ready)
    assert worker.process is not None
    pid = worker.process.pid
    topic = topic_env["TOPIC_STAGE_CHANGED"]

    await produce(kafka_settings, topic_env["TOPIC_CONTACT_EVENTS"], events)
    await _stage_records(kafka_settings, topic, 4)  # Everyone is a lead.
    await produce(kafka_settings, topic_env["TOPIC_CONTACT_EVENTS"], [hostile])

    # The control contact's stall comes; everything on its partition before it is known.
    records = await asyncio.to_thread(
        read_all,
        kafka_settings.bootstrap_servers,
        topic,
        until=lambda found: any(_is_stall_of(r.value, control) for r in found),
        timeout_s=120,
    )
    stalls = [o for o in map(outputs.validate_json, (r.value for r in records)) if _stall(o)]
    assert [stall.contact_id for stall in stalls] == [control], worker.log_tail()
    assert worker.process.poll() is None and worker.process.pid == pid


def _stall(output: StageChanged | StageStalled) -> bool:
    return isinstance(output, StageStalled)


def _is_stall_of(value: bytes, contact: str) -> bool:
    output = outputs.validate_json(value)
    return isinstance(output, StageStalled) and output.contact_id == contact
