"""What ``worker/faust_internals.py`` relies on still holds in the installed faust and aiokafka.

Each test names one private use. When an upgrade breaks one, re-read the new
source, adapt ``faust_internals.py`` and its comments, then move ``VERSIONS``.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from contextvars import ContextVar
from importlib.metadata import version

import aiokafka
import faust
import faust.streams
import pytest
from faust.transport import consumer as faust_consumer
from faust.transport import producer as faust_producer
from faust.transport.drivers import aiokafka as faust_aiokafka
from funnel_stage_engine.worker.faust_internals import VERSIONS, TunedApp, handling


def _parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_the_installed_versions_are_the_ones_the_internals_were_checked_against() -> None:
    assert {name: version(name) for name in VERSIONS} == VERSIONS


def test_handling_an_event_makes_it_faust_current_event() -> None:
    class Event:  # Faust keeps only a weak reference: any object that allows one will do.
        pass

    event = Event()
    assert isinstance(faust.streams._current_event, ContextVar)
    before = faust.streams.current_event()

    with handling(event):  # type: ignore[arg-type]
        assert faust.streams.current_event() is event
    assert faust.streams.current_event() is before


def test_faust_keeps_the_committed_offsets_in_the_consumer() -> None:
    source = inspect.getsource(faust_consumer.Consumer.__init__)
    assert "self._committed_offset = " in source


def test_faust_builds_its_worker_consumer_in_a_private_factory_we_override() -> None:
    thread = faust_aiokafka.AIOKafkaConsumerThread
    assert _parameters(thread._create_worker_consumer) == ["self", "transport"]
    assert "fetch_max_wait_ms=1500" in inspect.getsource(thread._create_worker_consumer)
    assert _parameters(faust_aiokafka.Consumer._new_consumer_thread) == ["self"]


def test_aiokafka_reads_the_fetch_wait_only_when_the_consumer_starts() -> None:
    consumer = aiokafka.AIOKafkaConsumer
    assert "self._fetch_max_wait_ms = fetch_max_wait_ms" in inspect.getsource(consumer.__init__)
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(consumer.start)


def test_the_app_builds_its_transport_and_producer_in_private_factories() -> None:
    assert _parameters(faust.App._new_transport) == ["self"]
    assert _parameters(faust.App._new_producer) == ["self"]
    assert "self.conf.broker_consumer" in inspect.getsource(faust.App._new_transport)
    assert faust_producer.ProducerBuffer.max_messages == 100
    assert TunedApp._new_transport is not faust.App._new_transport
    assert TunedApp._new_producer is not faust.App._new_producer


# Behaviour of faust's public API that the worker relies on (worker/durable_table.py,
# worker/batching.py): not private names, but a change would silently break a guarantee.


def test_every_table_write_goes_through_send_changelog_and_returns_its_future() -> None:
    # DurableTable collects the futures returned by the public send_changelog.
    source = inspect.getsource(faust.Table.on_key_set)
    assert "self.send_changelog(" in source
    assert "fut = self.send_changelog(" in source
    assert _parameters(faust.Table.send_changelog)[:4] == ["self", "partition", "key", "value"]


def test_a_changelog_future_resolves_on_the_ack_and_fails_on_a_refusal() -> None:
    from faust.topics import Topic
    from faust.types import FutureMessage

    assert issubclass(FutureMessage, asyncio.Future)
    published = inspect.getsource(Topic._on_published)
    assert "message.set_exception(exc)" in published
    assert "message.set_result(res)" in published


def test_a_revocation_clears_the_agents_queues_and_waits_for_their_acks_without_a_bound() -> None:
    # Why worker/batching.py watches a held batch: if faust stopped clearing or started
    # bounding this wait, the watch would be unneeded (harmless), so only the reason is
    # pinned here.
    revoked = inspect.getsource(faust.App._on_partitions_revoked)
    assert revoked.index("flow_control.clear") < revoked.index("_consumer_wait_empty")
    wait_empty = inspect.getsource(faust_consumer.Consumer.wait_empty)
    assert "while not self.should_stop and self._unacked_messages" in wait_empty


def test_the_app_takes_its_table_class_from_the_public_table_setting() -> None:
    from funnel_stage_engine.worker.durable_table import DurableTable

    app = faust.App("internals-check", Table=DurableTable)
    assert app.conf.Table is DurableTable


# The recovery race (worker/faust_internals.py, ``_Consumer.perform_seek`` and
# ``_add_gap``): records delivered while faust seeks after a recovery were cleared from
# the agent's queue and then committed as a "gap". Each fact it rests on is pinned.


def test_resuming_flow_control_clears_the_agent_queues_even_when_nothing_was_suspended() -> None:
    from mode.utils.queues import FlowControlEvent, FlowControlQueue

    async def scenario() -> int:
        flow = FlowControlEvent()
        flow.resume()
        queue: FlowControlQueue[str] = FlowControlQueue(flow_control=flow, clear_on_resume=True)
        await queue.put("a record delivered to an agent")
        flow.resume()  # What faust does at the end of a recovery, flow active or not.
        return queue.qsize()

    assert asyncio.run(scenario()) == 0
    channel_queue = inspect.getsource(faust.channels.Channel.queue.fget)  # type: ignore[attr-defined]
    assert "clear_on_resume=True" in channel_queue


def test_faust_seeks_before_it_clears_the_queues_and_resumes_the_flow_after_recovery() -> None:
    from faust.tables.recovery import Recovery

    for method in (Recovery.on_recovery_completed, Recovery._resume_streams):
        source = inspect.getsource(method)
        resumed = source.index("consumer.resume_partitions(")
        seek = source.index("consumer.perform_seek()")
        cleared = source.index("flow_control.resume()")
        flow = source.index("consumer.resume_flow()")
        assert resumed < seek < cleared < flow, method.__qualname__


def test_faust_fills_a_gap_in_offsets_through_the_private_add_gap() -> None:
    drain = inspect.getsource(faust_consumer.Consumer._drain_messages)
    assert "await self._add_gap(tp, r_offset + 1, offset)" in drain
    assert _parameters(faust_consumer.Consumer._add_gap) == [
        "self",
        "tp",
        "offset_from",
        "offset_to",
    ]
    assert "gap_for_tp.addi(" in inspect.getsource(faust_consumer.Consumer._add_gap)


def test_the_worker_consumer_seeks_with_the_flow_stopped_and_stops_on_a_gap() -> None:
    from faust.types import TP
    from funnel_stage_engine.worker.faust_internals import SkippedRecords, _Consumer

    class Seeking(_Consumer):
        # Only what perform_seek and _add_gap touch: no broker, no thread.
        def __init__(self) -> None:
            self.flow_during_seek: list[bool] = []
            self.crash_reasons: list[BaseException] = []
            self.flow_active = True
            self.can_resume_flow = asyncio.Event()
            self.suspend_flow = asyncio.Event()
            self._read_offset = {}
            self._committed_offset = {}

        @property
        def app(self) -> object:  # type: ignore[override]
            outer = self

            class App:
                async def crash(self, reason: BaseException) -> None:
                    outer.crash_reasons.append(reason)

            return App()

        async def seek_to_committed(self) -> dict[TP, int]:
            self.flow_during_seek.append(self.flow_active)
            return {TP("events", 0): 1620}

        async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
            return {tp: 0 for tp in partitions}  # Nothing deleted: every gap is faust's.

    async def scenario() -> Seeking:
        consumer = Seeking()
        await consumer.perform_seek()
        with pytest.raises(SkippedRecords, match=re.escape("1621..1622 of events[0]")):
            await consumer._add_gap(TP("events", 0), 1621, 1623)
        return consumer

    consumer = asyncio.run(scenario())
    assert consumer.flow_during_seek == [False]
    assert consumer._read_offset == {TP("events", 0): 1620}
    assert [type(e) for e in consumer.crash_reasons] == [SkippedRecords]


# Records dropped while the flow is stopped are read again only because of the seek that
# follows: faust's ``getmany`` drops them, and aiokafka's seek to the committed offsets
# leaves a partition without one where it is (``_Consumer.seek_to_committed``).


def test_faust_drops_records_fetched_while_the_flow_is_stopped_or_not_active() -> None:
    getmany = inspect.getsource(faust_consumer.Consumer.getmany)
    assert "if not self.flow_active:\n                    break" in getmany
    assert "getmany called while flow not active" in getmany
    assert "await self.perform_seek()" in getmany
    # A record of a partition outside the active set is skipped (not yielded).
    assert "or tp in active_partitions\n" in getmany
    # The active set handed to the client is the live one (emptied as recovery ends),
    # and aiokafka reads an empty set as every partition.
    assert "return tps\n" in inspect.getsource(faust_consumer.Consumer._get_active_partitions)
    fetched = inspect.getsource(aiokafka.consumer.fetcher.Fetcher.fetched_records)
    assert "if partitions and tp not in partitions:" in fetched
    perform_seek = inspect.getsource(faust_consumer.Consumer.perform_seek)
    assert "await self.seek_to_committed()" in perform_seek


def test_aiokafka_seeks_only_partitions_with_a_committed_offset_above_zero() -> None:
    source = inspect.getsource(aiokafka.AIOKafkaConsumer.seek_to_committed)
    assert "if offset and offset > 0:\n                self._fetcher.seek_to(tp, offset)" in source
    assert "await self._thread.seek_to_committed()" in inspect.getsource(
        faust_consumer.ThreadDelegateConsumer.seek_to_committed
    )


def test_the_worker_consumer_seeks_uncommitted_input_partitions_to_their_start() -> None:
    from faust.types import TP
    from funnel_stage_engine.worker.faust_internals import _Consumer

    committed = {
        TP("events", 0): 1620,  # aiokafka sought it.
        TP("events", 1): None,  # Nothing committed: left where the dropped records left it.
        TP("events", 2): 0,
        TP("states-changelog", 0): None,  # Not an input: faust's recovery positions it.
    }

    class Quiet:
        def dev(self, *args: object, **kwargs: object) -> None:
            """faust's development log (``seek`` writes to it)."""

    class Thread:
        async def seek_to_committed(self) -> dict[TP, int | None]:
            return dict(committed)

    class Uncommitted(_Consumer):
        def __init__(self) -> None:
            self._thread = Thread()  # type: ignore[assignment]
            self._read_offset = {}
            self.sought: dict[TP, int] = {}
            self.log = Quiet()  # type: ignore[assignment]

        @property
        def app(self) -> object:  # type: ignore[override]
            class Topics:
                def acks_enabled_for(self, topic: str) -> bool:
                    return topic == "events"

            class App:
                topics = Topics()

            return App()

        async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
            return {tp: 7 if tp.partition == 1 else 0 for tp in partitions}

        async def _seek(self, partition: TP, offset: int) -> None:
            self.sought[partition] = offset

    async def scenario() -> tuple[Uncommitted, object]:
        consumer = Uncommitted()
        return consumer, await consumer.seek_to_committed()

    consumer, returned = asyncio.run(scenario())
    assert returned == committed
    assert consumer.sought == {TP("events", 1): 7, TP("events", 2): 0}


def test_a_gap_the_broker_deleted_by_retention_is_logged_as_lost_and_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from faust.types import TP
    from funnel_stage_engine.worker.faust_internals import _Consumer

    class Retained(_Consumer):
        def __init__(self) -> None:
            pass

        async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
            return {tp: 5000 for tp in partitions}  # The log now starts at 5000.

    passed: list[tuple[int, int]] = []

    async def faust_add_gap(self: object, tp: TP, offset_from: int, offset_to: int) -> None:
        passed.append((offset_from, offset_to))

    # faust's own _add_gap, which such a gap is handed to, records what it was given.
    monkeypatch.setattr(faust_consumer.Consumer, "_add_gap", faust_add_gap)
    asyncio.run(Retained()._add_gap(TP("events", 0), 1200, 5000))

    assert passed == [(1200, 5000)]
