"""Queries over the projection: one contact's stages and history, and a funnel's report counts
(read from the aggregates migration 0007 keeps)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from funnel_stage_engine.read.report import StageCounts
from funnel_stage_engine.read.report_histogram import BUCKETS, percentile

__all__ = [
    "CONTACT_QUERIES",
    "HereNow",
    "contact_rows",
    "contacts_here_now",
    "ensure_report",
    "stage_counts",
]


# A contact's rows, each read by an index on the contact's id (tests/integration/
# stage_engine/test_contact_read_indexes.py checks the plans at a realistic size).
CONTACT_QUERIES = {
    "current": "SELECT * FROM contact_stages WHERE contact_id = $1 ORDER BY funnel",
    "history": "SELECT * FROM stage_history WHERE contact_id = $1 ORDER BY event_time, seq",
    "blocked": "SELECT * FROM stage_blocks WHERE contact_id = $1 ORDER BY event_time, id",
    "stalls": "SELECT * FROM stage_stalls WHERE contact_id = $1 ORDER BY event_time, id",
    "totals": "SELECT * FROM contact_totals WHERE contact_id = $1 ORDER BY funnel, rule_id",
    "merges": """
        SELECT * FROM contact_merges WHERE contact_id = $1 OR merged_contact_id = $1
        ORDER BY event_time, funnel
        """,
}


async def contact_rows(pool: asyncpg.Pool, contact_id: str) -> dict[str, list[dict[str, Any]]]:
    """Current stages, history (event time, then stored order), blocked skips, stalls, merges
    and running totals of a contact.

    One snapshot for all six reads: the projection commits a contact's rows together,
    and reads outside one transaction could see its history without its current stage."""
    rows: dict[str, list[dict[str, Any]]] = {}
    async with (
        pool.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        for name, query in CONTACT_QUERIES.items():
            rows[name] = [dict(row) for row in await connection.fetch(query, contact_id)]
    return rows


# "Here now" in a stage: its current stage, not merged away. The report's counts and the
# stage page's list both use this condition, so they agree.
_HERE_NOW = "funnel = $1 AND merged_into IS NULL"

# Newest stay first, a page at a time by keyset (index contact_stages_here_now).
_HERE_NOW_FIRST = f"""
SELECT contact_id, entered_at, stalled_at, furthest_stage FROM contact_stages
WHERE {_HERE_NOW} AND current_stage = $2
ORDER BY entered_at DESC, contact_id DESC LIMIT $3
"""
_HERE_NOW_AFTER = f"""
SELECT contact_id, entered_at, stalled_at, furthest_stage FROM contact_stages
WHERE {_HERE_NOW} AND current_stage = $2 AND (entered_at, contact_id) < ($4, $5)
ORDER BY entered_at DESC, contact_id DESC LIMIT $3
"""
_HERE_NOW_COUNT = f"SELECT count(*) FROM contact_stages WHERE {_HERE_NOW} AND current_stage = $2"


@dataclass(frozen=True)
class HereNow:
    """One page of the contacts in a stage now, and how many there are in all."""

    total: int
    contacts: list[dict[str, Any]]  # contact_id, entered_at, stalled_at, furthest_stage
    # The keyset of the next page (entered_at, contact_id of this page's last); None: last page.
    next_after: tuple[datetime, str] | None


async def contacts_here_now(
    pool: asyncpg.Pool,
    *,
    funnel: str,
    stage: str,
    size: int,
    after: tuple[datetime, str] | None = None,
) -> HereNow:
    """The contacts whose current stage is ``stage``, newest stay first, ``size`` at a time."""
    async with pool.acquire() as connection:
        if after is None:
            rows = await connection.fetch(_HERE_NOW_FIRST, funnel, stage, size + 1)
        else:
            rows = await connection.fetch(_HERE_NOW_AFTER, funnel, stage, size + 1, *after)
        total = await connection.fetchval(_HERE_NOW_COUNT, funnel, stage)
    contacts = [dict(row) for row in rows[:size]]
    more = len(rows) > size
    last = contacts[-1] if contacts else None
    next_after = (last["entered_at"], last["contact_id"]) if more and last else None
    return HereNow(total=int(total), contacts=contacts, next_after=next_after)


_REACHED = """
SELECT stage_idx, sum(reached)::bigint AS reached FROM report_reached
WHERE funnel = $1 AND ($2::date IS NULL OR day >= $2) AND ($3::date IS NULL OR day < $3)
GROUP BY stage_idx
"""

_HIST = """
SELECT stage_idx, bucket, sum(n)::bigint AS n, sum(us)::bigint AS us FROM report_hist
WHERE funnel = $1 AND ($2::date IS NULL OR day >= $2) AND ($3::date IS NULL OR day < $3)
GROUP BY stage_idx, bucket
"""

_CURRENT = "SELECT stage, in_progress, stalled FROM report_current WHERE funnel = $1"

_BLOCKED = """
SELECT stage, sum(n)::bigint AS blocked FROM report_blocked
WHERE funnel = $1 AND ($2::date IS NULL OR day >= $2) AND ($3::date IS NULL OR day < $3)
GROUP BY stage
"""

# A person is counted at each stall day in the range whose previous stall day in that stage
# is before the range (or that has none): once per stage, however often they stalled there.
_DROPPED = """
SELECT stage, sum(n)::bigint AS dropped FROM report_dropped
WHERE funnel = $1 AND ($2::date IS NULL OR day >= $2) AND ($3::date IS NULL OR day < $3)
  AND (prev_day = '-infinity'::date OR prev_day < $2)
GROUP BY stage
"""


async def ensure_report(connection: asyncpg.Connection, funnel: str, stages: Sequence[str]) -> None:
    """Register the funnel's stage list for its aggregates; (re)build them from the whole
    history when it is new or has changed (once: the database function takes a lock and
    checks again)."""
    registered = await connection.fetchval(
        "SELECT stages FROM report_funnels WHERE funnel = $1", funnel
    )
    if registered != list(stages):
        async with connection.transaction():
            await connection.execute("SELECT report_rebuild($1, $2::text[])", funnel, list(stages))


async def stage_counts(
    pool: asyncpg.Pool,
    *,
    funnel: str,
    stages: Sequence[str],
    since: date | None,
    until: date | None,
) -> dict[str, StageCounts]:
    """The report's raw counts per stage name over the days [since, until), from the
    aggregates (see ``report.py`` for the definitions): O(days x stages) rows."""
    async with pool.acquire() as connection:
        await ensure_report(connection, funnel, stages)
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            reached = await connection.fetch(_REACHED, funnel, since, until)
            hist = await connection.fetch(_HIST, funnel, since, until)
            current = await connection.fetch(_CURRENT, funnel)
            blocked = await connection.fetch(_BLOCKED, funnel, since, until)
            dropped = await connection.fetch(_DROPPED, funnel, since, until)
    width = len(stages)
    totals = [0] * width
    counts = [[0] * BUCKETS for _ in range(width)]
    sums_us = [[0] * BUCKETS for _ in range(width)]
    for row in reached:
        if 0 <= row["stage_idx"] - 1 < width:
            totals[row["stage_idx"] - 1] = row["reached"]
    for row in hist:
        index, slot = row["stage_idx"] - 1, row["bucket"] - 1
        if 0 <= index < width and 0 <= slot < BUCKETS:
            counts[index][slot] = row["n"]
            sums_us[index][slot] = row["us"]
    values: dict[str, dict[str, Any]] = {stage: {} for stage in stages}
    for index, stage in enumerate(stages):
        if totals[index]:
            values[stage].update(
                reached=totals[index],
                median_s=percentile(counts[index], sums_us[index], 0.5),
                p90_s=percentile(counts[index], sums_us[index], 0.9),
            )
    for row in current:
        if row["stage"] in values:
            values[row["stage"]].update(in_progress=row["in_progress"], stalled=row["stalled"])
    for row in blocked:
        if row["stage"] in values:
            values[row["stage"]]["blocked"] = row["blocked"]
    for row in dropped:
        if row["stage"] in values:
            values[row["stage"]]["dropped"] = row["dropped"]
    return {stage: StageCounts(**fields) for stage, fields in values.items()}
