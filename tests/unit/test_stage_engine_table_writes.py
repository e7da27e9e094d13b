"""Faust commits offsets only once every table write left its producer buffer."""

from __future__ import annotations

from funnel_stage_engine.adapters import flush_table_writes_fully


class GivingUpBuffer:
    """Like faust's producer buffer on a slow broker: each flush sends a few records,
    then gives up (faust's flush stops when nothing leaves for 0.1 s)."""

    def __init__(self, waiting: int, per_flush: int) -> None:
        self.waiting = waiting
        self.per_flush = per_flush
        self.flushes = 0

    @property
    def size(self) -> int:
        return self.waiting

    async def flush(self) -> None:
        self.flushes += 1
        self.waiting = max(0, self.waiting - self.per_flush)


async def test_the_flush_before_a_commit_goes_on_until_no_table_write_is_waiting() -> None:
    buffer = GivingUpBuffer(waiting=1_000, per_flush=64)
    flush_table_writes_fully(buffer)
    await buffer.flush()
    assert buffer.size == 0
    assert buffer.flushes == 16  # Faust's one flush would have left 936 writes behind.


async def test_an_empty_buffer_is_not_flushed() -> None:
    buffer = GivingUpBuffer(waiting=0, per_flush=64)
    flush_table_writes_fully(buffer)
    await buffer.flush()
    assert buffer.flushes == 0
