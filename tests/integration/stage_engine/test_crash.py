"""Kill -9 the stage engine mid-stream, restart it, and compare with the pure engine.

At-least-once: the same stage change may be published twice, always with the
same id. What must never happen is a lost transition, or one logical
transition (funnel, contact, causing messageId, target stage) under two ids.

The built-in lifecycle funnel announces stalls (without moving anyone). When
a stall fires depends on how far event time has advanced on the partition, so
stalls are not compared with the pure engine; each stay must still stall
under one id at most. The input has no anonymous contacts: a merge's outcome
depends on when the transfer arrives between the identified contact's events
(see the README), which the per-event pure engine does not model.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from funnel_shared.events import ContactEvent, StageBlocked, StageChanged, StageOutput, StageStalled
from funnel_shared.settings import KafkaSettings
from funnel_stage_engine.domain.definitions import load_funnels
from funnel_stage_engine.domain.engine import ContactState, evaluate
from pydantic import TypeAdapter

from tests.integration.conftest import StageEngineFactory
from tests.support.contact_events import START, contact_event, produce
from tests.support.kafka_reader import Record, TopicReader
from tests.support.processes import StageEngineWorker
from tests.support.stage_engine_probe import events_processed, wait_for
from tests.support.stage_engine_runs import all_committed, input_ends, logical

pytestmark = pytest.mark.integration

CONTACTS = 100
EVENTS = 1500  # 15 per contact: deep enough into every built-in funnel.
KILLS = 2  # Each restart replays from the last commit, then is killed again.
# Frequent commits, so that every kill lands after some commits and before the end:
# each restart resumes mid-stream, not from the start of the topic.
COMMIT_INTERVAL_S = "0.5"
outputs_adapter: TypeAdapter[object] = TypeAdapter(StageOutput)

# Weighted towards progress through the built-in funnels, with noise and repeats.
VOCABULARY: list[tuple[str, str | None, dict[str, object]]] = [
    ("page", None, {"name": "Home"}),
    ("page", None, {"name": "Pricing"}),
    ("page", None, {"name": "Pricing"}),
    ("track", "Product Viewed", {}),
    ("track", "Signed Up", {}),
    ("identify", None, {"traits": {"email": "someone@example.com"}}),
    ("track", "Demo Requested", {}),
    ("track", "Webinar Attended", {}),
    ("track", "Order Completed", {"properties": {"total": 30}}),
    ("track", "Order Completed", {"properties": {"total": 90}}),
    ("track", "Referral Sent", {}),
]


def _journeys(run: str) -> list[ContactEvent]:
    """EVENTS events over CONTACTS contacts, interleaved, each contact's in time order.

    One in fifty is a re-send of the contact's previous message (same messageId),
    as a retrying client or producer would do.
    """
    rng = random.Random(4)
    clock: dict[str, datetime] = {}
    last: dict[str, ContactEvent] = {}
    events: list[ContactEvent] = []
    for _ in range(EVENTS):
        contact = f"crash-{run}-{rng.randrange(CONTACTS)}"
        if contact in last and rng.random() < 0.02:
            events.append(last[contact])
            continue
        clock[contact] = clock.get(contact, START) + timedelta(hours=rng.randrange(1, 30))
        kind, name, fields = rng.choice(VOCABULARY)
        event = contact_event(contact, kind, name, at=clock[contact], **fields)
        events.append(event)
        last[contact] = event
    return events


def _expected(events: list[ContactEvent]) -> dict[tuple[str, ...], str]:
    """The pure engine over the same input: logical transition -> id."""
    funnels = load_funnels()
    states: dict[str, ContactState] = defaultdict(ContactState)
    expected: dict[tuple[str, ...], str] = {}
    for event in events:
        result = evaluate(
            states[event.contact_key], event, funnels=funnels, processed_at=datetime.now(UTC)
        )
        states[event.contact_key] = result.state
        for output in result.outputs:
            assert isinstance(output, StageChanged | StageBlocked)
            expected[logical(output)] = output.id
    return expected


async def _wait_for_progress(worker: StageEngineWorker, at_least: float) -> float:
    deadline = asyncio.get_running_loop().time() + 120
    while asyncio.get_running_loop().time() < deadline:
        processed = await asyncio.to_thread(events_processed, worker)
        if processed >= at_least:
            return processed
        await asyncio.sleep(0.05)
    raise AssertionError(f"no progress to {at_least} events\n{worker.log_tail()}")


@contextmanager
def _reader(bootstrap_servers: str, topic: str) -> Iterator[TopicReader]:
    reader = TopicReader(bootstrap_servers, topic)
    try:
        yield reader
    finally:
        reader.close()


@pytest.mark.parametrize("store", ["rocksdb://", "memory://"])
async def test_killing_the_worker_mid_stream_loses_no_transition_and_never_changes_an_id(
    store: str,
    stage_engine_worker: StageEngineFactory,
    kafka_settings: KafkaSettings,
    topic_env: dict[str, str],
) -> None:
    events = _journeys(uuid.uuid4().hex[:8])
    expected = _expected(events)
    await produce(kafka_settings, topic_env["TOPIC_CONTACT_EVENTS"], events)
    worker = stage_engine_worker(
        STAGE_ENGINE_STORE=store, STAGE_ENGINE_COMMIT_INTERVAL_S=COMMIT_INTERVAL_S
    )
    for _ in range(KILLS):
        worker.start()
        processed_at_kill = await _wait_for_progress(worker, at_least=EVENTS / 5)
        worker.kill()
        assert processed_at_kill < EVENTS, "the worker finished before it could be killed"
    worker.start()

    with _reader(kafka_settings.bootstrap_servers, topic_env["TOPIC_STAGE_CHANGED"]) as reader:
        wanted = set(expected.values())

        def all_there(records: list[Record]) -> bool:
            return wanted <= {record.headers.get("ce_id") for record in records}

        found = await asyncio.to_thread(reader.read_until, all_there, timeout_s=150)
        # Once every record is committed, whatever it published is on the topic: read it all.
        # (Not the worker's lag gauge: a partition fully committed before the restart yields
        # nothing, so the gauge never learns its end.)
        servers, topic = kafka_settings.bootstrap_servers, topic_env["TOPIC_CONTACT_EVENTS"]
        ends = await asyncio.to_thread(
            input_ends, servers, topic, len(events), kafka_settings.partitions
        )
        group = worker.env["STAGE_ENGINE_APP_ID"]
        everything = all_committed(servers, group, topic, ends)
        await wait_for(everything, what="every record committed", worker=worker)
        assert await asyncio.to_thread(reader.read_to_end, timeout_s=60)
        everything = [outputs_adapter.validate_json(r.value) for r in reader.records]
    outputs = [o for o in everything if isinstance(o, StageChanged | StageBlocked)]
    stalls = [o for o in everything if isinstance(o, StageStalled)]
    assert len(outputs) + len(stalls) == len(everything)
    ids_by_stay: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for stall in stalls:
        ids_by_stay[(stall.funnel, stall.contact_id, stall.stage, stall.entry_id)].add(stall.id)
    assert all(len(ids) == 1 for ids in ids_by_stay.values())

    ids_by_transition: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for output in outputs:
        ids_by_transition[logical(output)].add(output.id)
    missing = set(expected) - set(ids_by_transition)
    unexpected = set(ids_by_transition) - set(expected)
    assert found and not missing, f"{len(missing)} lost, e.g. {sorted(missing)[:3]}"
    assert not unexpected, f"{len(unexpected)} unexpected, e.g. {sorted(unexpected)[:3]}"
    assert all(ids == {expected[key]} for key, ids in ids_by_transition.items())
    assert len(outputs) >= len(expected)  # Duplicates (same id) are allowed.
