"""Every use of faust's (and aiokafka's) private internals, in one place.

Each use says why it is needed. All were checked against the versions the lock
pins: faust-streaming 0.15.3 (with mode-streaming 0.7.1) and aiokafka 0.14.0,
by reading their installed source. ``tests/unit/stage_engine/test_faust_internals.py``
fails when an upgrade changes what is relied on here: re-read the new source
before moving the pins in ``VERSIONS``.

Everything else in the worker uses faust's public API.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import aiokafka
import faust
import faust.streams as faust_streams
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, EventT, TransportT
from faust.types.transports import ProducerT

__all__ = ["VERSIONS", "SkippedRecords", "TunedApp", "committed_offsets", "handling"]

_log = logging.getLogger("funnel.stage_engine")

# The distributions whose private names this module uses, at the versions checked.
VERSIONS = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}


@contextmanager
def handling(event: EventT[Any] | None) -> Iterator[None]:
    """Table reads and writes inside this block act on behalf of ``event``.

    Why: faust finds a table key's partition (for the changelog record and the
    RocksDB file) from the event being handled, read by the public
    ``faust.streams.current_event()`` from the private context variable
    ``faust.streams._current_event`` (a ``ContextVar`` of a weak reference).
    Faust's stream sets it per event as it iterates; the handler stores a batch's
    states after the whole batch was published, outside that iteration, so it
    sets the variable itself. Checked: faust-streaming 0.15.3, ``faust/streams.py``.
    """
    if event is None:
        yield
        return
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


def committed_offsets(consumer: Any) -> Mapping[Any, int | None]:
    """The offsets this worker committed (or found at assignment), per topic partition.

    Why: the consumer-lag gauge needs them and faust has no public accessor; its
    ``Consumer`` keeps them in ``_committed_offset`` (a defaultdict set in
    ``__init__``). Read with a default so a missing attribute only empties the
    gauge. Checked: faust-streaming 0.15.3, ``faust/transport/consumer.py``.
    """
    committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
    return committed


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread, with the worker consumer's fetch wait from the settings.

    Why: faust builds its worker consumer in the private
    ``AIOKafkaConsumerThread._create_worker_consumer(transport)`` with
    ``fetch_max_wait_ms=1500`` and offers no setting for it. On Apache Kafka a
    waiting fetch returns as soon as data arrives, so the figure only bounds idle
    polling; the embedded broker does not wake a waiting fetch, so there every
    quiet moment would delay the next events by up to 1.5 s. The stage engine
    therefore uses ``KAFKA_FETCH_MAX_WAIT_MS``, like the other consumers.
    Checked: faust-streaming 0.15.3, ``faust/transport/drivers/aiokafka.py``.
    """

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait_ms: int | None = getattr(self.app, "fetch_max_wait_ms", None)
        if wait_ms is not None:
            # aiokafka keeps the constructor argument in the private ``_fetch_max_wait_ms``
            # and reads it only in ``start()``, where it builds its fetcher: setting it
            # before the start is the same as passing it. Checked: aiokafka 0.14.0,
            # ``aiokafka/consumer/consumer.py``.
            consumer._fetch_max_wait_ms = wait_ms
        return consumer


class SkippedRecords(RuntimeError):
    """Faust was about to deliver a record past offsets it never delivered."""


class _Consumer(faust_aiokafka.Consumer):
    # Why: the private factory ``Consumer._new_consumer_thread()`` is the one place
    # faust picks the thread class above. Checked: faust-streaming 0.15.3.
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        """Seek to the committed offsets with the flow stopped (faust resumes it after).

        Why: when a rebalance's table recovery has read the changelogs, the flow is
        active, and faust (``Recovery.on_recovery_completed`` and ``_resume_streams``)
        resumes the stream partitions, awaits this seek, and only then calls
        ``flow_control.resume()``, which clears every agent queue
        (``FlowControlEvent.resume`` always clears, ``clear_on_resume=True`` queues).
        Records the fetcher delivered during the seek were dropped by that clear while
        the consumer's read offset had already passed them; the next record then
        looked like a gap, which faust fills as acked (``_add_gap``) and commits past:
        records never processed were committed (a rebalance under load lost
        transitions). With the flow stopped nothing is delivered until faust resumes
        it, after the clear, from the offsets this seek set.
        Checked: faust-streaming 0.15.3, ``faust/tables/recovery.py``,
        ``faust/transport/consumer.py``; mode-streaming 0.7.1, ``mode/utils/queues.py``.
        """
        self.stop_flow()
        await super().perform_seek()

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek to the committed offsets, and input partitions with none to their start.

        Why: faust drops records its client already returned (the client's position has
        passed them) in two places of ``Consumer.getmany``, and relies on this seek, after
        every rebalance, to read them again:
        - records fetched while the flow is stopped are discarded;
        - records of a partition outside the active set are skipped. A fetch made while
          the changelog was read can return input records: the active set it was given is
          the consumer's live set, which the end of the recovery empties, and aiokafka's
          ``fetched_records`` takes an empty set as "every partition".
        aiokafka seeks only partitions with a committed offset above 0
        (``AIOKafkaConsumer.seek_to_committed``); any other stays where it is, past the
        dropped records, which were never processed. That happened to a worker restarted
        before its first commit, whose recovery read the changelog. For such a partition
        the committed position is where a consumer without one starts: the earliest offset
        (``consumer_auto_offset_reset="earliest"``). Records already applied come back as
        replays, which change nothing.
        Checked: faust-streaming 0.15.3, ``Consumer.getmany``, ``Consumer.perform_seek``;
        aiokafka 0.14.0, ``AIOKafkaConsumer.seek_to_committed``, ``Fetcher.fetched_records``.
        """
        # Typed as int by faust; aiokafka gives None for a partition with no committed offset.
        committed = await super().seek_to_committed()
        acked_topic = self.app.topics.acks_enabled_for
        unread = [tp for tp, offset in committed.items() if not offset and acked_topic(tp.topic)]
        if unread:
            earliest = await self.earliest_offsets(*unread)
            for tp in unread:
                await self.seek(tp, earliest.get(tp) or 0)
        return committed

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        """Stop the worker instead of treating offsets never delivered as acked.

        Why: faust calls this (private) when the next record of a partition is more
        than one offset past the last one it read, meant for offsets that hold no
        record (compaction, transaction markers), and counts the gap as acked, so a
        commit passes it. The stage engine's input topics have neither (they are not
        compacted and no producer of them uses transactions), so a gap means faust
        dropped records it read; committing past them would lose them. Stopping
        commits nothing past them: the restarted worker reads them again.
        One gap is real: records the broker deleted (retention) before the worker read
        them, which no restart brings back. Those are logged as lost and passed, so the
        worker does not stop again and again.
        Checked: faust-streaming 0.15.3, ``Consumer._drain_messages``.
        """
        earliest = (await self.earliest_offsets(tp)).get(tp)
        if earliest is not None and earliest >= offset_to:
            _log.error(
                "offsets %s..%s of %s[%s] were deleted by the broker (retention) before the"
                " worker read them: their events are lost",
                offset_from,
                offset_to - 1,
                tp.topic,
                tp.partition,
            )
            await super()._add_gap(tp, offset_from, offset_to)
            return
        error = SkippedRecords(
            f"faust skipped offsets {offset_from}..{offset_to - 1} of {tp.topic}"
            f"[{tp.partition}] without delivering them; stopping so they are read again"
        )
        _log.critical("%s", error)
        await self.app.crash(error)
        raise error


class _Transport(faust_aiokafka.Transport):
    Consumer: ClassVar[Any] = _Consumer


class TunedApp(faust.App):
    """A faust app whose consumer and producer take two settings faust does not offer."""

    # Read by the transport when it builds the worker consumer (None: faust's own).
    fetch_max_wait_ms: int | None = None

    # Table writes wait in faust's producer buffer; beyond this many, faust stops feeding
    # the streams until it drained. A batch stores up to batch_max_events states at once.
    producer_buffer_max: int = 100

    # Why: ``App._new_transport()`` is the private factory of the consumer transport;
    # overriding it is how an app picks its own transport class (the driver registry
    # is keyed by URL scheme, and ``kafka://`` must stay faust's aiokafka driver).
    # Faust calls it as ``transport_cls(self.conf.broker_consumer, self)``.
    # Checked: faust-streaming 0.15.3, ``faust/app/base.py``.
    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)

    # Why: ``App._new_producer()`` is the private factory of the app's producer; the
    # buffer limit (``ProducerBuffer.max_messages``, a class default of 100) has no
    # setting, and only here is the producer reachable before faust starts using it.
    # Checked: faust-streaming 0.15.3, ``faust/app/base.py``, ``faust/transport/producer.py``.
    def _new_producer(self) -> ProducerT:
        producer = super()._new_producer()
        producer.buffer.max_messages = self.producer_buffer_max
        return producer
