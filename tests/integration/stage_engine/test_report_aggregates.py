"""The aggregate report equals the report computed from the whole history (the oracle).

Random histories of one funnel go through the real projection store into a real
PostgreSQL: forward moves, skips, backward moves, stalls (some moving the contact back),
refused skips, anonymous contacts merged into identified ones (their changes before and
after the merge), records stored twice (replays) and batches split at random, stored whole
or record by record. The funnel's aggregates are registered before, in the middle of, or
after the history (a rebuild from history, as on an upgrade). For the whole time and for
random whole-day ranges, every count must equal the oracle's (``tests/support/
report_oracle.py``: the report query from before the aggregates) and the median and p90
times to convert must lie within the histogram's documented bound. A forced rebuild must
then leave exactly the aggregates the projection kept. Two projections storing two
partitions at once, and one killed (kill -9) inside a batch's transaction, keep them too.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from funnel_shared.events import AnyStageOutput, StageChanged
from funnel_stage_engine.read.projection_store import ProjectionStore
from funnel_stage_engine.read.reads import ensure_report, stage_counts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.report_crash_child import RECORDS
from tests.support.report_oracle import stage_counts_from_history
from tests.support.stage_outputs import blocked, journey, merged, stalled

pytestmark = pytest.mark.integration

STAGES = ["visitor", "lead", "prospect", "customer"]
BASE = datetime(2026, 11, 1, tzinfo=UTC)
HOURS = 24 * 12  # Histories span about two weeks of whole hours (midnights included).
WIDTH = 2**0.25  # One histogram slot: 4 per doubling (read/report_histogram.py).
_RUNS = itertools.count()


@pytest.fixture
async def pool(module_projection_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(module_projection_database, min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


# One contact's life: (stage index, hours after the previous change, stall) per change;
# a stall is (hours after the change, index it moves the contact back to or None).
step = st.tuples(
    st.integers(0, len(STAGES) - 1),
    st.sampled_from([0, 0, 1, 2, 5, 13, 30, 49]),
    st.none() | st.tuples(st.integers(1, 60), st.none() | st.integers(0, len(STAGES) - 1)),
)
life = st.tuples(st.integers(0, HOURS), st.lists(step, min_size=1, max_size=5))


@dataclass
class History:
    funnel: str
    records: list[AnyStageOutput] = field(default_factory=list)


Stall = tuple[int, int | None] | None


def _contact_records(
    name: str, funnel: str, start: int, steps: Sequence[tuple[int, int, Stall]]
) -> list[AnyStageOutput]:
    """A contact's stage changes and stalls, in the order the engine emits them."""
    moves: list[tuple[str, datetime]] = []
    stalls: dict[int, tuple[int, int | None]] = {}
    hour = start
    previous: int | None = None
    for target, gap, stall in steps:
        if target == previous:
            continue
        hour += gap
        moves.append((STAGES[target], BASE + timedelta(hours=hour)))
        previous = target
        if stall is not None:
            after, back = stall
            stalls[len(moves) - 1] = (after, back)
            hour += after
            if back is not None and back != target:
                moves.append((STAGES[back], BASE + timedelta(hours=hour)))
                previous = back
    changes = journey(name, funnel, moves, stages=STAGES)
    out: list[AnyStageOutput] = []
    for index, change in enumerate(changes):
        out.append(change)
        if index in stalls:
            after, back = stalls[index]
            move_to = None if back is None or back == STAGES.index(change.to_stage) else back
            out.append(
                stalled(
                    change,
                    after=timedelta(hours=after),
                    move_to=None if move_to is None else STAGES[move_to],
                )
            )
    return out


@st.composite
def histories(draw: st.DrawFn) -> History:
    run = next(_RUNS)
    funnel = f"prop-{run}-{draw(st.integers(0, 10**6))}"
    rng = random.Random(draw(st.integers(0, 2**32)))
    known = [f"{funnel}-c{i}" for i in range(draw(st.integers(1, 6)))]
    anonymous = [f"{funnel}-a{i}" for i in range(draw(st.integers(0, 4)))]
    survivors: dict[str, list[AnyStageOutput]] = {}
    for contact in known + anonymous:
        start, steps = draw(life)
        own = _contact_records(contact, funnel, start, steps)
        if contact in known and draw(st.booleans()):
            at = BASE + timedelta(hours=draw(st.integers(0, HOURS)))
            current = draw(st.sampled_from(STAGES))
            own.insert(
                rng.randrange(len(own) + 1),
                blocked(contact, funnel, current=current, attempted="customer", at=at),
            )
        survivors[contact] = own
    for anon in anonymous:
        if not known or not draw(st.booleans()):
            continue
        into = draw(st.sampled_from(known))
        at = BASE + timedelta(hours=draw(st.integers(0, HOURS + 48)))
        merge = merged(
            into,
            anon,
            funnel,
            stage=draw(st.sampled_from(STAGES)),
            anonymous_stage=draw(st.sampled_from(STAGES)),
            at=at,
        )
        survivors[into].insert(rng.randrange(len(survivors[into]) + 1), merge)
    streams = [own for own in survivors.values() if own]
    # Interleave the contacts (each one's records stay in order, as in its partition).
    records: list[AnyStageOutput] = []
    while streams:
        stream = rng.choice(streams)
        records.append(stream.pop(0))
        if not stream:
            streams.remove(stream)
    # Replays: some records come again later.
    for _ in range(draw(st.integers(0, 4))):
        if records:
            again = rng.choice(records)
            records.insert(rng.randrange(records.index(again), len(records) + 1), again)
    return History(funnel=funnel, records=records)


async def _store(pool: asyncpg.Pool, records: list[AnyStageOutput], rng: random.Random) -> None:
    store = ProjectionStore(pool)
    index = 0
    while index < len(records):
        size = rng.randint(1, 6)
        batch = records[index : index + size]
        if rng.random() < 0.3:
            assert await store.apply_each(batch) == []
        else:
            await store.apply(batch)
        index += size


def _days(history: History) -> list[date]:
    times = [r.event_time for r in history.records] or [BASE]
    first, last = min(times).date(), max(times).date()
    return [first + timedelta(days=n) for n in range(-1, (last - first).days + 2)]


async def _compare(
    pool: asyncpg.Pool, history: History, since: date | None, until: date | None
) -> None:
    counts = await stage_counts(
        pool, funnel=history.funnel, stages=STAGES, since=since, until=until
    )
    async with pool.acquire() as connection:
        oracle = await stage_counts_from_history(
            connection,
            funnel=history.funnel,
            stages=STAGES,
            since=None if since is None else datetime.combine(since, datetime.min.time(), UTC),
            until=None if until is None else datetime.combine(until, datetime.min.time(), UTC),
        )
    for stage in STAGES:
        got, want = counts[stage], oracle[stage]
        where = f"{stage} in [{since}, {until})"
        for name in ("reached", "in_progress", "stalled", "blocked", "dropped"):
            assert getattr(got, name) == getattr(want, name), f"{name} at {where}"
        for name in ("median_s", "p90_s"):
            estimate, exact = getattr(got, name), getattr(want, name)
            assert (estimate is None) == (exact is None), f"{name} at {where}"
            if exact is not None:
                # Within one slot: under 19% off, or under 1 s for times under a second.
                assert exact / WIDTH - 1.0 - 1e-6 <= estimate <= exact * WIDTH + 1.0 + 1e-6, where


async def _aggregates(pool: asyncpg.Pool, funnel: str) -> dict[str, list[tuple[object, ...]]]:
    # Per table: its key columns, then its figures (a row whose figures are all zero, left
    # behind by a figure taken away again, is the same as no row).
    tables = {
        "report_reached": ("day, stage_idx", "reached, went_on"),
        "report_hist": ("day, stage_idx, bucket", "n, us"),
        "report_dropped": ("day, stage, prev_day", "n"),
        "report_current": ("stage", "in_progress, stalled"),
        "report_blocked": ("day, stage", "n"),
    }
    out = {}
    for table, (keys, figures) in tables.items():
        width = len(figures.split(",")) if figures else 0
        columns = f"{keys}, {figures}" if figures else keys
        rows = await pool.fetch(f"SELECT {columns} FROM {table} WHERE funnel = $1", funnel)
        kept = [tuple(r) for r in rows if not width or _nonzero(tuple(r)[-width:])]
        out[table] = sorted(kept, key=repr)
    return out


def _nonzero(figures: tuple[object, ...]) -> bool:
    for value in figures:
        if isinstance(value, list) and any(v for v in value if not isinstance(v, datetime)):
            return True
        if isinstance(value, list) and any(isinstance(v, datetime) for v in value):
            return True
        if isinstance(value, int) and value:
            return True
    return False


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories(), when=st.sampled_from(["before", "middle", "after"]), seed=st.integers())
async def test_the_aggregate_report_equals_the_report_from_history(
    pool: asyncpg.Pool, history: History, when: str, seed: int
) -> None:
    rng = random.Random(seed)
    half = len(history.records) // 2
    async with pool.acquire() as connection:
        if when == "before":
            await ensure_report(connection, history.funnel, STAGES)
        await _store(pool, history.records[:half], rng)
        if when == "middle":
            await ensure_report(connection, history.funnel, STAGES)
        await _store(pool, history.records[half:], rng)
        await _store(pool, history.records, rng)  # The whole topic replayed: nothing changes.
    days = _days(history)
    await _compare(pool, history, None, None)
    for _ in range(4):
        since, until = sorted(rng.sample(days, 2)) if len(days) > 1 else (days[0], days[0])
        await _compare(pool, history, since, until)
        await _compare(pool, history, since, None)
        await _compare(pool, history, None, until)
    kept = await _aggregates(pool, history.funnel)
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "SELECT report_rebuild($1, $2::text[], true)", history.funnel, STAGES
        )
    assert await _aggregates(pool, history.funnel) == kept


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories(), seed=st.integers())
async def test_two_projections_storing_partitions_at_once_keep_the_report_exact(
    module_projection_database: str, history: History, seed: int
) -> None:
    """Two projection instances (their own pools) store two partitions at the same time: a
    merge is stored by the identified contact's partition while the anonymous contact's
    changes are stored by the other. Aggregate maintenance is serialised, so the figures
    still equal the report from history."""
    rng = random.Random(seed)
    # Partition by contact, as the engine keys its outputs.
    partitions: list[list[AnyStageOutput]] = [[], []]
    for record in history.records:
        partitions[hash(record.contact_id) % 2].append(record)
    pools = [
        await asyncpg.create_pool(module_projection_database, min_size=1, max_size=2)
        for _ in partitions
    ]
    try:
        async with pools[0].acquire() as connection:
            await ensure_report(connection, history.funnel, STAGES)
        await asyncio.gather(
            *(
                _store(pool, records, random.Random(rng.random()))
                for pool, records in zip(pools, partitions, strict=True)
            )
        )
        await _compare(pools[0], history, None, None)
        days = _days(history)
        since, until = sorted(rng.sample(days, 2)) if len(days) > 1 else (days[0], days[0])
        await _compare(pools[0], history, since, until)
    finally:
        for pool in pools:
            await pool.close()


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories(), cut=st.floats(0.1, 0.9))
async def test_a_projection_killed_inside_a_batch_leaves_rows_and_report_in_step(
    pool: asyncpg.Pool, module_projection_database: str, history: History, cut: float
) -> None:
    """kill -9 of a process storing a batch, at the moment that matters: its rows written
    and the touched people's figures taken away, not yet added again. The batch is lost
    as a whole (rows and figures: one transaction), the report still equals the one from
    the history stored, and storing everything again (the projection resumes from its
    committed offsets) makes it whole."""
    if len(history.records) < 2:
        return
    async with pool.acquire() as connection:
        await ensure_report(connection, history.funnel, STAGES)
    stop_at = max(1, int(len(history.records) * cut))
    path = Path(tempfile.mkdtemp(prefix="report-crash-")) / "records.json"
    path.write_bytes(RECORDS.dump_json(history.records))
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.report_crash_child",
        module_projection_database,
        str(path),
        str(stop_at),
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[3],
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), timeout=120)
        assert line.strip() == b"halted", line
        os.kill(child.pid, signal.SIGKILL)
        await asyncio.wait_for(child.wait(), timeout=60)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    stored = await pool.fetchval(
        "SELECT count(*) FROM stage_history WHERE funnel = $1", history.funnel
    )
    first = {r.id for r in history.records[:stop_at] if isinstance(r, StageChanged)}
    assert stored == len(first)  # The halted batch is not there, the first one is.
    await _compare(pool, history, None, None)
    await _store(pool, history.records, random.Random(stop_at))
    assert await pool.fetchval(
        "SELECT count(*) FROM stage_history WHERE funnel = $1", history.funnel
    ) == len({r.id for r in history.records if isinstance(r, StageChanged)})
    await _compare(pool, history, None, None)
