"""The agent's held batch (``worker/batching.py``): a batch the agent cannot finish is
flushed by the watch, and a worker whose records wait without progress says so."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from funnel_stage_engine.worker.batching import HeldBatch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _held() -> tuple[HeldBatch, list[list[Any]], Clock]:
    flushed: list[list[Any]] = []
    clock = Clock()

    async def flush(records: Sequence[Any]) -> None:
        flushed.append(list(records))

    return HeldBatch(flush, clock=clock), flushed, clock


async def test_a_batch_left_waiting_for_a_whole_interval_is_flushed_by_the_watch() -> None:
    held, flushed, _ = _held()
    held.add("r1")
    await held.watch()  # The agent added since the last watch: it is still collecting.
    assert flushed == []
    await held.watch()  # Nothing added for a whole interval: its read is waiting.
    assert flushed == [["r1"]] and len(held) == 0 and held.flushed_by_watch == 1
    await held.watch()
    assert flushed == [["r1"]]


async def test_the_agent_flushes_what_it_holds_once_and_in_order() -> None:
    held, flushed, _ = _held()
    held.add("r1")
    held.add("r2")
    await held.flush()
    held.add("r3")
    await held.flush()
    await held.flush()
    assert flushed == [["r1", "r2"], ["r3"]]


async def test_waiting_without_progress_is_measured_only_while_records_wait() -> None:
    held, _, clock = _held()
    clock.now += 50
    assert held.stalled_for(waiting=False) == 0.0
    assert held.stalled_for(waiting=True) == 50.0  # Queued records, no batch finished.
    held.add("r1")
    clock.now += 7
    assert held.stalled_for(waiting=False) == 7.0
    await held.flush()
    assert held.stalled_for(waiting=False) == 0.0
