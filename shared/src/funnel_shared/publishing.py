"""The one outbound seam: buffer records with ``send()``, then await the acks together.

Every service publishes the same way. ``send()`` hands a record to the
producer's buffer and returns an awaitable that resolves when the broker has
acknowledged it (``acks=all``). Buffering every record of a request or batch
first and awaiting the acks together lets the producer ship them in few
requests; one ``send_and_wait()`` per record costs about twice the CPU.

``publish_all`` returns one outcome per record, so each caller decides what a
failure means: ingest answers 503, the stage engine stores no state and the
notifier's outbox marks no row. It never leaves an outcome unretrieved, so a
failure midway logs no "exception was never retrieved".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Acks", "OutboundRecord", "Publisher", "publish", "publish_all"]


@dataclass(frozen=True)
class OutboundRecord:
    """A record ready to send: JSON value and CloudEvents headers."""

    key: str
    value: bytes
    headers: list[tuple[str, bytes]]


class Publisher(Protocol):
    """Send a record to the producer's buffer.

    Returns an awaitable (aiokafka's and faust's producers both give a future
    of the record's metadata) that resolves on the broker's ack, or raises why
    the record was not acknowledged. ``send()`` itself raises when the record
    cannot even be buffered.
    """

    async def send(self, topic: str, record: OutboundRecord) -> Awaitable[Any]: ...


@dataclass(frozen=True)
class Acks:
    """What became of each record of a ``publish_all``, in the order given."""

    outcomes: list[BaseException | None]  # None: acknowledged.

    @property
    def failures(self) -> list[BaseException]:
        return [outcome for outcome in self.outcomes if outcome is not None]

    def raise_first(self) -> None:
        """Raise the first failure, if any: for callers to whom any failure is total."""
        for outcome in self.outcomes:
            if outcome is not None:
                raise outcome


async def publish_all(publisher: Publisher, records: Sequence[tuple[str, OutboundRecord]]) -> Acks:
    """Buffer every (topic, record) in order, then await all the acks.

    The producer keeps the send order per partition, so records with one key
    stay in order. If ``send()`` raises midway, that is raised; the records
    buffered before it may still go out, and their outcomes are retrieved
    unlogged (a failed request or batch is retried as a whole anyway).
    """
    pending: list[asyncio.Future[Any]] = []
    try:
        for topic, record in records:
            pending.append(asyncio.ensure_future(await publisher.send(topic, record)))
    except BaseException:
        for future in pending:
            future.add_done_callback(_retrieve)
        raise
    results = await asyncio.gather(*pending, return_exceptions=True)
    return Acks([result if isinstance(result, BaseException) else None for result in results])


async def publish(publisher: Publisher, topic: str, record: OutboundRecord) -> None:
    """Send one record and return once the broker acknowledged it."""
    await (await publisher.send(topic, record))


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
