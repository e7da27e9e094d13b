"""The app's deadline index: which contacts get a tick, on which partition's event time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from funnel_stage_engine.worker.deadlines import DeadlineIndex, partition_of

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PARTITIONS = 6


def _busy_index() -> DeadlineIndex:
    # Never idle within a test: time advances only with the events read (a wall clock a year
    # ahead of them never holds them back).
    return DeadlineIndex(
        partitions=PARTITIONS,
        idle_after_s=3600,
        lateness_s=0,
        wall_clock=lambda: T0 + timedelta(days=365),
    )


def test_a_busy_partition_ticks_a_contact_once_its_events_pass_the_deadline() -> None:
    index = _busy_index()
    index.note("c-1", T0 + timedelta(days=14))
    assigned = {partition_of("c-1", PARTITIONS)}
    index.saw("c-1", T0 + timedelta(days=13))
    assert index.due(assigned) == []

    index.saw("c-1", T0 + timedelta(days=15))
    assert index.due(assigned) == [("c-1", T0 + timedelta(days=15))]
    assert index.due(assigned) == []  # Not again while the tick is in flight.


def test_an_event_on_another_partition_does_not_advance_this_one() -> None:
    index = _busy_index()
    other = next(
        f"c-{n}" for n in range(100) if partition_of(f"c-{n}", 6) != partition_of("c-1", 6)
    )
    index.note("c-1", T0)
    index.saw(other, T0 + timedelta(days=99))
    assert index.due({partition_of("c-1", PARTITIONS)}) == []


def test_an_idle_partition_follows_the_wall_clock() -> None:
    index = DeadlineIndex(partitions=PARTITIONS, idle_after_s=0, lateness_s=0)
    index.rebuild([("c-1", {"funnels": {}})], {partition_of("c-1", PARTITIONS)})
    index.note("c-1", datetime.now(UTC) - timedelta(seconds=1))
    [(contact, now)] = index.due({partition_of("c-1", PARTITIONS)})
    assert contact == "c-1" and now > T0


def test_a_rebuild_indexes_only_the_assigned_partitions_deadlines() -> None:
    index = _busy_index()
    state = {"funnels": {"f": {"current": "a", "furthest": "a", "stall_at": T0.isoformat()}}}
    mine = partition_of("c-1", PARTITIONS)
    others = [f"c-{n}" for n in range(50) if partition_of(f"c-{n}", PARTITIONS) != mine]
    index.rebuild([("c-1", state), (others[0], state)], {mine})
    index.saw("c-1", T0)
    assert index.due(set(range(PARTITIONS))) == [("c-1", T0)]
