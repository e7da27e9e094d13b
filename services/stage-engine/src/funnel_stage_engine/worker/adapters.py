"""Faust implementations of the handler's two seams (the publisher and the state store)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import faust
from faust.exceptions import ConsumerNotStarted
from faust.types import EventT, TableT
from faust.types.transports import ProducerT
from funnel_shared.publishing import OutboundRecord

from funnel_stage_engine.worker.faust_internals import committed_offsets, handling

__all__ = ["FaustPublisher", "TableStateStore", "consumer_lag"]


class FaustPublisher:
    """A ``funnel_shared.publishing.Publisher`` over the app's faust producer."""

    def __init__(self, producer: Callable[[], ProducerT]) -> None:
        self._producer = producer  # The app's, read when publishing: faust builds it late.

    async def send(self, topic: str, record: OutboundRecord) -> Awaitable[Any]:
        # send() hands the record to the client's buffer and returns a future of its
        # RecordMetadata, which resolves on the broker's ack. The client keeps the send
        # order per partition, so a contact's outputs stay in order. (Topic.send() would
        # add faust's per-record bookkeeping around the same call.)
        return await self._producer().send(
            topic, record.key.encode(), record.value, None, None, record.headers
        )


class TableStateStore:
    """The contact-state faust table, read and written on behalf of a record's faust event.

    Faust finds a table key's partition (for the changelog record and the RocksDB
    file) from the event being handled, which it keeps in a context variable. A
    batch's states are stored after the whole batch was published, outside faust's
    own per-event iteration, so each access names its event explicitly
    (``faust_internals.handling``).
    """

    def __init__(self, table: TableT[str, Any]) -> None:
        self._table = table

    def get(self, contact_id: str, *, origin: EventT[Any] | None) -> Mapping[str, Any] | None:
        with handling(origin):
            value: Mapping[str, Any] | None = self._table.get(contact_id)
        return value

    def set(self, contact_id: str, state: dict[str, Any], *, origin: EventT[Any] | None) -> None:
        with handling(origin):
            self._table[contact_id] = state


def consumer_lag(app: faust.App, topic: str) -> dict[int, int]:
    """High-water mark minus committed offset, per assigned partition of ``topic``.

    The high-water mark comes from fetch responses (right on the embedded broker
    too); the committed offset is the one this worker committed or found at assignment.
    """
    consumer = app.consumer
    end_offsets = app.monitor.tp_end_offsets
    committed = committed_offsets(consumer)
    try:
        assignment = consumer.assignment()
    except ConsumerNotStarted:
        return {}
    lags: dict[int, int] = {}
    for tp in assignment:
        if tp.topic != topic or tp not in end_offsets:
            continue
        lags[tp.partition] = max(0, end_offsets[tp] - (committed.get(tp) or 0))
    return lags
