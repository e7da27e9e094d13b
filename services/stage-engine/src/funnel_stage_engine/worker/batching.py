"""The agent's batch in the making, and the watch that keeps it from hanging.

The agent adds records to the held batch while more are already waiting in its
queue, and hands the batch over (``flush``: handle, await the states' acks, ack
the records) as soon as the queue is empty. One race remains: the queue can be
emptied between the agent's look and its next read, and then the read waits.
Faust does that itself when a rebalance starts: it suspends and clears the
agents' queues, then waits, without a bound, until every record the agent took
is acked (``Consumer.wait_empty``). A held batch would never be acked: a hang.
So a timer flushes a batch that has been held for a whole interval without the
agent adding to it, and the rebalance goes on.

It also keeps the time of the last progress, so the worker can tell (on
``/healthz`` and in a metric) that records are waiting and nothing moves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ["HeldBatch"]

Flush = Callable[[Sequence[Any]], Awaitable[None]]


class HeldBatch:
    """Records taken by the agent and not yet handled; flushed by the agent or the watch.

    ``flush_records(records)`` handles, stores and acks a batch, and raises if the
    worker must stop. Both flushers take the same lock, so a batch is flushed once
    and batches are flushed in order.
    """

    def __init__(self, flush_records: Flush, *, clock: Callable[[], float] = time.monotonic):
        self._flush_records = flush_records
        self._clock = clock
        self._records: list[Any] = []
        self._lock = asyncio.Lock()
        self._added_since_watch = False
        self.last_progress = clock()
        self.flushed_by_watch = 0

    def __len__(self) -> int:
        return len(self._records)

    def add(self, record: Any) -> None:
        self._records.append(record)
        self._added_since_watch = True
        self.last_progress = self._clock()

    async def flush(self) -> None:
        async with self._lock:
            records, self._records = self._records, []
            if records:
                await self._flush_records(records)
            self.last_progress = self._clock()

    async def watch(self) -> None:
        """Called every interval: flush a batch the agent left waiting since the last call."""
        if self._records and not self._added_since_watch and not self._lock.locked():
            self.flushed_by_watch += 1
            await self.flush()
        self._added_since_watch = False

    def stalled_for(self, *, waiting: bool) -> float:
        """Seconds without progress while records wait (held, or ``waiting`` in the queue);
        0 when nothing waits."""
        if not self._records and not waiting:
            return 0.0
        return max(0.0, self._clock() - self.last_progress)
