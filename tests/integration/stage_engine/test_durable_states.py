"""A contact's state is durable before the offsets of the records that produced it are
committed: against the real broker, with real worker processes and faults in the
worker's producer seam (``tests/support/faulty_stage_engine.py``)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from funnel_shared.settings import KafkaSettings

from tests.integration.conftest import StageEngineFactory
from tests.support.contact_events import produce
from tests.support.kafka_reader import read_all
from tests.support.stage_engine_probe import read_changelog, wait_for
from tests.support.stage_engine_runs import (
    all_committed,
    committed_offsets,
    comparable,
    input_ends,
    journeys,
    published_transitions,
    pure_engine,
    read_input_positions,
    start_with_faults,
)

pytestmark = pytest.mark.integration


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


async def test_a_slow_changelog_and_a_kill_right_after_a_commit_lose_no_state(
    stage_engine_worker: StageEngineFactory,
    kafka_settings: KafkaSettings,
    topic_env: dict[str, str],
    tmp_path: Path,
) -> None:
    topic = topic_env["TOPIC_CONTACT_EVENTS"]
    events = journeys(uuid.uuid4().hex[:8], contacts=30, steps=10)
    expected, expected_states = pure_engine(events)
    await produce(kafka_settings, topic, events)
    worker = stage_engine_worker(
        STAGE_ENGINE_COMMIT_INTERVAL_S="0.2",
        STAGE_ENGINE_BATCH_MAX_EVENTS="10",
        STAGE_ENGINE_IDLE_PARTITION_AFTER_S="3600",
    )
    app_id = worker.env["STAGE_ENGINE_APP_ID"]
    commits = tmp_path / "commits.jsonl"
    # Each changelog record waits longer than faust's flush before a commit does.
    start_with_faults(worker, FAULT_CHANGELOG_DELAY_S="0.15", FAULT_COMMIT_LOG=str(commits))

    def committed_a_third() -> bool:
        if not commits.exists():
            return False
        lines = commits.read_text().splitlines()
        return any(
            sum(v for k, v in json.loads(line).items() if k.startswith(topic)) >= len(events) / 3
            for line in lines
            if line
        )

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 150
    while not committed_a_third():  # Polled tightly: the kill follows the commit at once.
        assert loop.time() < deadline, worker.log_tail()
        assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
        await asyncio.sleep(0.01)
    worker.kill()
    committed = await asyncio.to_thread(
        committed_offsets,
        kafka_settings.bootstrap_servers,
        app_id,
        topic,
        kafka_settings.partitions,
    )
    assert 0 < sum(committed) < len(events), committed

    servers = kafka_settings.bootstrap_servers
    ends = await asyncio.to_thread(
        input_ends, servers, topic, len(events), kafka_settings.partitions
    )

    worker.start()  # Without faults: the restarted worker replays from the commit.

    everything = all_committed(servers, app_id, topic, ends)
    await wait_for(everything, what="every record committed", worker=worker)
    records = await asyncio.to_thread(
        read_all,
        kafka_settings.bootstrap_servers,
        topic_env["TOPIC_STAGE_CHANGED"],
        until=lambda r: {x.headers.get("ce_id") for x in r} >= set(expected.values()),
        timeout_s=120,
    )
    ids = published_transitions(records)
    missing = set(expected) - set(ids)
    unexpected = set(ids) - set(expected)
    assert not missing, f"{len(missing)} lost, e.g. {sorted(missing)[:3]}"
    assert not unexpected, f"{len(unexpected)} unexpected, e.g. {sorted(unexpected)[:3]}"
    assert all(found == {expected[key]} for key, found in ids.items())

    states = await asyncio.to_thread(read_changelog, kafka_settings.bootstrap_servers, app_id)
    for contact, state in expected_states.items():
        assert comparable(states.get(contact, {})) == comparable(state.to_json()), contact
