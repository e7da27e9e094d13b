"""Records a restarted worker fetched while it sought to its committed offsets are read
again, also on partitions with nothing committed yet: against the real broker, with real
worker processes and a slow seek (``tests/support/faulty_stage_engine.py``).

After a recovery that read the changelog, faust's fetcher is already running when the
worker resumes its input partitions and seeks to the committed offsets. A fetch it made
while reading the changelog can return input records that faust then drops (the flow is
stopped for the seek, or the partitions are not active yet) and relies on the seek to
read again. aiokafka's seek leaves a partition with no committed offset where it is, past
the dropped records: they were never processed (the CI run that found this waited 150 s
for the last events of a replay, and the commit could have passed them).

The test makes that moment long and likely: faust ends the recovery 0.3 s late and its
seek takes 2 s more; the first events are all on one partition, whose records the
restarted worker's client fetches ahead, and new events trickle onto the other
partitions meanwhile. Without the fix, 3 runs of 3 lost the first partition's records.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from funnel_shared.events import ContactEvent
from funnel_shared.kafka import producer_kwargs
from funnel_shared.settings import KafkaSettings

from tests.integration.conftest import StageEngineFactory
from tests.support.contact_events import produce, send_events
from tests.support.kafka_reader import read_all
from tests.support.processes import StageEngineWorker
from tests.support.stage_engine_probe import events_processed, lag, read_changelog, wait_for
from tests.support.stage_engine_runs import (
    all_committed,
    input_ends,
    journeys,
    published_transitions,
    pure_engine,
    start_with_faults,
)

pytestmark = pytest.mark.integration


async def _changelog_read(worker: StageEngineWorker) -> None:
    """Wait (polling tightly) until the restarted worker logs that it read the changelog."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 150
    while "Done reading from changelog topics" not in worker.log_tail(1_000_000):
        assert loop.time() < deadline, worker.log_tail()
        assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
        await asyncio.sleep(0.01)


def on_partition_zero(
    events: list[ContactEvent], partitions: int, wanted: bool = True
) -> list[ContactEvent]:
    """The events whose contact the producer's default partitioner puts (or, with
    ``wanted=False``, does not put) on partition 0."""
    partitioner = DefaultPartitioner()
    numbers = list(range(partitions))
    return [
        event
        for event in events
        if (partitioner(event.contact_key.encode(), numbers, numbers) == 0) == wanted
    ]


async def test_records_fetched_during_a_slow_seek_after_recovery_are_processed_not_dropped(
    stage_engine_worker: StageEngineFactory,
    kafka_settings: KafkaSettings,
    topic_env: dict[str, str],
) -> None:
    topic = topic_env["TOPIC_CONTACT_EVENTS"]
    run = uuid.uuid4().hex[:8]
    partitions = kafka_settings.partitions
    events = on_partition_zero(journeys(run, contacts=150, steps=10), partitions)
    trickle = on_partition_zero(journeys(f"{run}-late", contacts=12, steps=6), partitions, False)
    expected, _ = pure_engine(events + trickle)
    await produce(kafka_settings, topic, events)
    servers = kafka_settings.bootstrap_servers
    # No commit in the first run: every input partition is uncommitted at the restart.
    worker = stage_engine_worker(
        STAGE_ENGINE_STORE="memory://", STAGE_ENGINE_COMMIT_INTERVAL_S="3600"
    )
    app_id = worker.env["STAGE_ENGINE_APP_ID"]
    worker.start()
    await wait_for(
        lambda: events_processed(worker) >= len(events), what="every event processed", worker=worker
    )
    contacts = {event.contact_key for event in events}
    await wait_for(
        lambda: set(read_changelog(servers, app_id)) >= contacts,
        what="every contact's state in the changelog",
        worker=worker,
    )
    assert sum(lag(worker).values()) == len(events), "an offset was committed before the kill"
    worker.kill()

    worker.env["STAGE_ENGINE_COMMIT_INTERVAL_S"] = "0.5"
    producer = AIOKafkaProducer(**producer_kwargs(kafka_settings, client_id="test"))
    await producer.start()
    try:
        # The restart recovers the states from the changelog; its fetcher runs from then
        # on. Faust ends the recovery (resumes the input partitions, seeks) 0.3 s late, and
        # the seek takes 2 s: the fetch made when the changelog was read is still waiting
        # when the trickle's first record wakes it.
        start_with_faults(worker, FAULT_RECOVERY_END_DELAY_S="0.3", FAULT_SEEK_DELAY_S="2")
        await _changelog_read(worker)
        await send_events(producer, topic, trickle)
    finally:
        await producer.stop()
    everything = len(events) + len(trickle)
    await wait_for(
        lambda: events_processed(worker) >= everything,
        what="the replay processed",
        worker=worker,
        timeout_s=90,
    )
    ends = await asyncio.to_thread(input_ends, servers, topic, everything, partitions)
    await wait_for(
        all_committed(servers, app_id, topic, ends), what="every record committed", worker=worker
    )
    records = await asyncio.to_thread(
        read_all,
        servers,
        topic_env["TOPIC_STAGE_CHANGED"],
        until=lambda r: {x.headers.get("ce_id") for x in r} >= set(expected.values()),
        timeout_s=60,
    )
    ids = published_transitions(records)
    assert set(ids) == set(expected)
    assert all(found == {expected[key]} for key, found in ids.items())
