"""Inputs and checks shared by the stage engine's crash tests: journeys, the pure engine's
result over them, and the committed offsets and record positions on the broker."""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from funnel_shared.events import (
    ContactEvent,
    StageBlocked,
    StageChanged,
    StageOutput,
    StageStalled,
)
from funnel_stage_engine.domain.definitions import load_funnels
from funnel_stage_engine.domain.engine import ContactState, evaluate
from pydantic import TypeAdapter

from tests.support.contact_events import START, contact_event
from tests.support.kafka_reader import Record, read_all
from tests.support.processes import StageEngineWorker, start_logged

REPO_ROOT = Path(__file__).resolve().parents[2]

# Through every built-in funnel, with noise and repeats.
STEPS: list[tuple[str, str | None, dict[str, object]]] = [
    ("page", None, {"name": "Home"}),
    ("track", "Signed Up", {}),
    ("page", None, {"name": "Pricing"}),
    ("track", "Product Viewed", {}),
    ("track", "Demo Requested", {}),
    ("identify", None, {"traits": {"email": "someone@example.com"}}),
    ("track", "Order Completed", {"properties": {"total": 30}}),
    ("page", None, {"name": "Pricing"}),
    ("track", "Order Completed", {"properties": {"total": 90}}),
    ("track", "Referral Sent", {}),
]


def journeys(run: str, *, contacts: int, steps: int) -> list[ContactEvent]:
    """``steps`` events per contact (the STEPS in order), contacts interleaved."""
    events = []
    for step in range(steps):
        kind, name, fields = STEPS[step % len(STEPS)]
        at = START + timedelta(hours=step)
        for n in range(contacts):
            events.append(contact_event(f"{run}-{n}", kind, name, at=at, **fields))
    return events


Logical = tuple[str, ...]
outputs_adapter: TypeAdapter[object] = TypeAdapter(StageOutput)


def logical(output: StageChanged | StageBlocked) -> Logical:
    target = output.to_stage if isinstance(output, StageChanged) else output.attempted_stage
    return (output.kind, output.funnel, output.contact_id, output.cause_message_id, target)


def published_transitions(records: list[Record]) -> dict[Logical, set[str]]:
    """Each logical transition on the stage-changed topic (a stage change or a refused
    skip) with the ids it was published under; stall records are left out."""
    ids: dict[Logical, set[str]] = defaultdict(set)
    for record in records:
        output = outputs_adapter.validate_json(record.value)
        if isinstance(output, StageStalled):
            continue
        assert isinstance(output, StageChanged | StageBlocked), output
        ids[logical(output)].add(output.id)
    return ids


def pure_engine(events: list[ContactEvent]) -> tuple[dict[Logical, str], dict[str, ContactState]]:
    """The pure engine over ``events``: logical transition -> id, and every final state."""
    funnels = load_funnels()
    states: dict[str, ContactState] = defaultdict(ContactState)
    expected: dict[Logical, str] = {}
    for event in events:
        result = evaluate(
            states[event.contact_key], event, funnels=funnels, processed_at=datetime.now(UTC)
        )
        states[event.contact_key] = result.state
        for output in result.outputs:
            assert isinstance(output, StageChanged | StageBlocked)
            expected[logical(output)] = output.id
    return expected, dict(states)


def comparable(state: dict[str, Any]) -> dict[str, Any]:
    """A state without what depends on the run rather than the events: input positions
    (offsets) and stall deadlines (stalls fire by the partitions' event time)."""
    copy = json.loads(json.dumps(state))
    copy.pop("positions", None)
    for funnel in copy.get("funnels", {}).values():
        funnel.pop("stall_at", None)
    return dict(copy)


def committed_offsets(bootstrap_servers: str, group: str, topic: str, partitions: int) -> list[int]:
    """The group's committed offset per partition of ``topic`` (0: none)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": group, "enable.auto.commit": False}
    )
    try:
        found = consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=30
        )
    finally:
        consumer.close()
    return [max(tp.offset, 0) for tp in sorted(found, key=lambda tp: tp.partition)]


def offsets_by_partition(records: list[Record]) -> list[tuple[int, int, str]]:
    """(partition, offset, contact) of every record of a topic read from the start (a topic
    only the test wrote to, without transactions: the n-th record has offset n)."""
    next_offset: dict[int, int] = defaultdict(int)
    found = []
    for record in records:
        assert record.key is not None
        found.append((record.partition, next_offset[record.partition], record.key.decode()))
        next_offset[record.partition] += 1
    return found


def read_input_positions(
    bootstrap_servers: str, topic: str, expected: int
) -> list[tuple[int, int, str]]:
    records = read_all(bootstrap_servers, topic, until=lambda r: len(r) >= expected)
    return offsets_by_partition(records)


def input_ends(bootstrap_servers: str, topic: str, expected: int, partitions: int) -> list[int]:
    """The end offset of each partition of ``topic`` once it holds ``expected`` records."""
    ends = [0] * partitions
    for partition, offset, _ in read_input_positions(bootstrap_servers, topic, expected):
        ends[partition] = max(ends[partition], offset + 1)
    return ends


def all_committed(
    bootstrap_servers: str, group: str, topic: str, ends: list[int]
) -> Callable[[], bool]:
    """A check (for ``stage_engine_probe.wait_for``): ``group`` has committed every record of
    ``topic`` up to ``ends``, as the broker says."""
    return lambda: committed_offsets(bootstrap_servers, group, topic, len(ends)) == ends


def start_with_faults(worker: StageEngineWorker, **faults: str) -> None:
    """Start ``worker`` as ``tests.support.faulty_stage_engine`` (the real worker with the
    faults ``faults`` selects; see that module) instead of the console script. The
    worker's own ``PYTHONPATH``, if any, is kept after the repository root."""
    assert worker.process is None or worker.process.poll() is not None, "already running"
    path = os.pathsep.join(p for p in (str(REPO_ROOT), worker.env.get("PYTHONPATH")) if p)
    env = {**worker.env, **faults, "PYTHONPATH": path}
    worker.process = start_logged(
        [sys.executable, "-m", "tests.support.faulty_stage_engine"],
        env=env,
        log_path=worker.log_path,
        cwd=worker.data_dir.parent,
    )
