"""Faust implementations of the handler's two seams: the publisher and the state store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faust
from faust.exceptions import ConsumerNotStarted
from faust.types import TableT, TopicT

__all__ = ["FaustPublisher", "TableStateStore", "consumer_lag"]


class FaustPublisher:
    """Publishes through the app's producer and returns only once the broker acknowledged."""

    def __init__(self, topics: Mapping[str, TopicT]) -> None:
        self._topics = dict(topics)

    async def publish(
        self, topic: str, *, key: str, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        # Topic.send() hands the record to the producer and returns a future of
        # its RecordMetadata; awaiting that future is waiting for the ack.
        # (With stream_publish_on_commit left off, send() never defers to commit time.)
        pending = await self._topics[topic].send(key=key.encode(), value=value, headers=headers)
        await pending


class TableStateStore:
    """The contact-state faust table. Writes must happen while handling the contact's event:
    faust puts the changelog record in the partition of the current event."""

    def __init__(self, table: TableT[str, Any]) -> None:
        self._table = table

    def get(self, contact_id: str) -> Mapping[str, Any] | None:
        value: Mapping[str, Any] | None = self._table.get(contact_id)
        return value

    def set(self, contact_id: str, state: dict[str, Any]) -> None:
        self._table[contact_id] = state


def consumer_lag(app: faust.App, topic: str) -> dict[int, int]:
    """High-water mark minus committed offset, per assigned partition of ``topic``.

    The high-water mark comes from fetch responses (right on the embedded broker
    too); the committed offset is the one this worker committed or found at assignment.
    """
    consumer = app.consumer
    end_offsets = app.monitor.tp_end_offsets
    # Faust keeps the committed offsets here and has no public accessor.
    committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
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
