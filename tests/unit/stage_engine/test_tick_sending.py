"""Stall ticks are awaited like other outputs, and a tick that was not acknowledged is
sent again at the next check (``worker/ticks.py`` over the deadline index)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from funnel_stage_engine.domain.commands import decode_command
from funnel_stage_engine.worker.deadlines import DeadlineIndex, partition_of
from funnel_stage_engine.worker.ticks import send_ticks

from tests.support.fake_publisher import FakePublisher

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PARTITIONS = 6
COMMANDS = "commands"


def _due_index() -> tuple[DeadlineIndex, set[int]]:
    # A fixed wall clock well after the events: the stall clock may not run past the wall clock.
    index = DeadlineIndex(
        partitions=PARTITIONS,
        idle_after_s=3600,
        lateness_s=0,
        wall_clock=lambda: T0 + timedelta(days=365),
    )
    index.note("c-1", T0 + timedelta(days=14))
    index.saw("c-1", T0 + timedelta(days=15))
    return index, {partition_of("c-1", PARTITIONS)}


async def test_a_tick_that_was_not_acknowledged_is_sent_again_at_the_next_check() -> None:
    index, assigned = _due_index()
    publisher = FakePublisher()
    publisher.fail_with = ConnectionError("broker unreachable")

    sent = await send_ticks(
        publisher, index.due(assigned), commands_topic=COMMANDS, deadlines=index
    )
    assert sent == 0 and publisher.sent == []

    publisher.fail_with = None
    sent = await send_ticks(
        publisher, index.due(assigned), commands_topic=COMMANDS, deadlines=index
    )
    assert sent == 1
    [(topic, key, value, _)] = publisher.sent
    assert (topic, key) == (COMMANDS, "c-1")
    assert decode_command(value).type == "tick"


async def test_an_acknowledged_tick_is_not_sent_again_while_it_is_in_flight() -> None:
    index, assigned = _due_index()
    publisher = FakePublisher()
    assert await send_ticks(
        publisher, index.due(assigned), commands_topic=COMMANDS, deadlines=index
    )
    assert index.due(assigned) == []
