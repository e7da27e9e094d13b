"""A contact's state is durable before the offsets of the records that produced it are
committed: against the real broker, with real worker processes and faults in the
worker's producer seam (``tests/support/faulty_stage_engine.py``)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from funnel_shared.events import StageOutput
from funnel_shared.settings import KafkaSettings
from pydantic import TypeAdapter

from tests.integration.conftest import StageEngineFactory
from tests.support.contact_events import produce
from tests.support.stage_engine_probe import read_changelog
from tests.support.stage_engine_runs import (
    committed_offsets,
    journeys,
    read_input_positions,
    start_with_faults,
)

pytestmark = pytest.mark.integration

outputs_adapter: TypeAdapter[object] = TypeAdapter(StageOutput)


async def test_a_refused_state_write_stops_the_worker_before_any_later_commit(
    stage_engine_worker: StageEngineFactory,
    kafka_settings: KafkaSettings,
    topic_env: dict[str, str],
    tmp_path: Path,
) -> None:
    topic = topic_env["TOPIC_CONTACT_EVENTS"]
    events = journeys(uuid.uuid4().hex[:8], contacts=40, steps=8)
    await produce(kafka_settings, topic, events)
    worker = stage_engine_worker(
        STAGE_ENGINE_COMMIT_INTERVAL_S="0.2", STAGE_ENGINE_BATCH_MAX_EVENTS="20"
    )
    app_id = worker.env["STAGE_ENGINE_APP_ID"]
    start_with_faults(
        worker,
        FAULT_CHANGELOG_REFUSE_AFTER="200",
        FAULT_COMMIT_LOG=str(tmp_path / "commits.jsonl"),
    )
    assert worker.process is not None
    status = await asyncio.to_thread(worker.process.wait, 150)

    log = worker.log_tail(200_000)
    assert status != 0, log[-4000:]
    assert "cannot store contact states, stopping the worker" in log, log[-4000:]
    assert "NotEnoughReplicasError" in log
    # Every record below a committed offset has its contact's state in the changelog,
    # at or past that record (the state remembers the last record applied to it).
    committed = await asyncio.to_thread(
        committed_offsets,
        kafka_settings.bootstrap_servers,
        app_id,
        topic,
        kafka_settings.partitions,
    )
    states = await asyncio.to_thread(read_changelog, kafka_settings.bootstrap_servers, app_id)
    positions = await asyncio.to_thread(
        read_input_positions, kafka_settings.bootstrap_servers, topic, len(events)
    )
    not_durable = [
        (partition, offset, contact)
        for partition, offset, contact in positions
        if offset < committed[partition]
        and states.get(contact, {}).get("positions", {}).get(f"{topic}:{partition}", -1) < offset
    ]
    assert not not_durable, f"committed without a durable state: {not_durable[:5]}"
    assert sum(committed) < len(events), "the fault came after everything was committed"
    assert (tmp_path / "commits.jsonl").exists(), "no commit before the fault: nothing shown"
