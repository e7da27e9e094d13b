"""The one fake ``Publisher`` for tests: records what was acknowledged, per topic.

``fail_with`` makes acks fail (on ``fail_topic`` only, when set); ``hold``
keeps every ack pending until the event is set; ``refuse_with`` makes
``send()`` itself raise once ``refuse_after`` records were buffered.
"""

from __future__ import annotations

import asyncio
from typing import Any

from funnel_shared.publishing import OutboundRecord

__all__ = ["FakePublisher", "Sent"]

# (topic, key, value, headers decoded)
Sent = tuple[str, str, bytes, dict[str, str]]


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[Sent] = []  # Acknowledged records, in ack order.
        self.buffered = 0  # Records handed to send(), acknowledged or not.
        self.fail_with: Exception | None = None
        self.fail_topic: str | None = None
        self.hold: asyncio.Event | None = None
        self.refuse_with: Exception | None = None
        self.refuse_after = 0

    async def send(self, topic: str, record: OutboundRecord) -> asyncio.Future[Any]:
        if self.refuse_with is not None and self.buffered >= self.refuse_after:
            raise self.refuse_with
        self.buffered += 1
        if self.hold is None:
            ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._settle(ack, topic, record)
            return ack
        return asyncio.ensure_future(self._held(topic, record))

    async def _held(self, topic: str, record: OutboundRecord) -> None:
        assert self.hold is not None
        await self.hold.wait()
        ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._settle(ack, topic, record)
        await ack

    def _settle(self, ack: asyncio.Future[Any], topic: str, record: OutboundRecord) -> None:
        if self.fail_with is not None and self.fail_topic in (None, topic):
            ack.set_exception(self.fail_with)
            return
        headers = {name: value.decode() for name, value in record.headers}
        self.sent.append((topic, record.key, record.value, headers))
        ack.set_result(None)

    def on(self, topic: str) -> list[Sent]:
        """The acknowledged records of one topic."""
        return [sent for sent in self.sent if sent[0] == topic]
