"""The report as it was computed before the aggregates (migration 0007): straight from the
history, on every request. Kept as the test oracle the aggregate report is compared with.

It grows with history (6-7 s at 1,000,000 contacts), so only tests use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
from funnel_stage_engine.read.report import StageCounts

__all__ = ["stage_counts_from_history"]

# Per stage index: the first time each person moved forward into it or beyond. A merged
# (anonymous) contact counts as the contact it was merged into: one person, counted once.
_FIRST_REACHED = """
WITH merged AS (
    SELECT DISTINCT ON (merged_contact_id) merged_contact_id, contact_id
    FROM contact_merges ORDER BY merged_contact_id, event_time
), moves AS (
    SELECT coalesce(m.contact_id, h.contact_id) AS contact_id, h.event_time,
           array_position($2::text[], h.to_stage) - 1 AS to_index,
           array_position($2::text[], h.from_stage) - 1 AS from_index
    FROM stage_history h LEFT JOIN merged m ON m.merged_contact_id = h.contact_id
    WHERE h.funnel = $1
), firsts AS (
    SELECT m.contact_id, s.idx, min(m.event_time) AS reached_at
    FROM moves m
    JOIN generate_series(0, cardinality($2::text[]) - 1) AS s(idx) ON m.to_index >= s.idx
    WHERE m.to_index IS NOT NULL AND (m.from_index IS NULL OR m.to_index > m.from_index)
    GROUP BY m.contact_id, s.idx
), in_range AS (
    SELECT * FROM firsts
    WHERE ($3::timestamptz IS NULL OR reached_at >= $3)
      AND ($4::timestamptz IS NULL OR reached_at < $4)
)
SELECT r.idx,
       count(*) AS reached,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM n.reached_at - r.reached_at)) AS median_s,
       percentile_cont(0.9) WITHIN GROUP (
           ORDER BY extract(epoch FROM n.reached_at - r.reached_at)) AS p90_s
FROM in_range r
LEFT JOIN firsts n ON n.contact_id = r.contact_id AND n.idx = r.idx + 1
GROUP BY r.idx
"""


_CURRENT = """
SELECT current_stage,
       count(*) FILTER (WHERE stalled_at IS NULL) AS in_progress,
       count(*) FILTER (WHERE stalled_at IS NOT NULL) AS stalled
FROM contact_stages WHERE funnel = $1 AND merged_into IS NULL GROUP BY current_stage
"""


_BLOCKED = """
SELECT current_stage, count(*) AS blocked FROM stage_blocks
WHERE funnel = $1 AND current_stage IS NOT NULL
  AND ($2::timestamptz IS NULL OR event_time >= $2)
  AND ($3::timestamptz IS NULL OR event_time < $3)
GROUP BY current_stage
"""


# Per stage: people who stalled there (the stall's deadline in the range) and whose furthest
# stage in the funnel is still that stage or an earlier one: they never progressed. A merged
# (anonymous) contact counts as the contact it was merged into, judged by that one's furthest.
_DROPPED = """
WITH merged AS (
    SELECT DISTINCT ON (merged_contact_id) merged_contact_id, contact_id
    FROM contact_merges ORDER BY merged_contact_id, event_time
), stalls AS (
    SELECT DISTINCT coalesce(m.contact_id, s.contact_id) AS contact_id, s.stage
    FROM stage_stalls s LEFT JOIN merged m ON m.merged_contact_id = s.contact_id
    WHERE s.funnel = $1
      AND ($3::timestamptz IS NULL OR s.event_time >= $3)
      AND ($4::timestamptz IS NULL OR s.event_time < $4)
)
SELECT st.stage, count(*) AS dropped
FROM stalls st
JOIN contact_stages c ON c.contact_id = st.contact_id AND c.funnel = $1
WHERE c.merged_into IS NULL
  AND array_position($2::text[], c.furthest_stage) <= array_position($2::text[], st.stage)
GROUP BY st.stage
"""


async def stage_counts_from_history(
    connection: asyncpg.Connection,
    *,
    funnel: str,
    stages: Sequence[str],
    since: datetime | None,
    until: datetime | None,
) -> dict[str, StageCounts]:
    """The report's raw counts per stage name, from the history tables (exact percentiles)."""
    reached = await connection.fetch(_FIRST_REACHED, funnel, list(stages), since, until)
    current = await connection.fetch(_CURRENT, funnel)
    blocked = await connection.fetch(_BLOCKED, funnel, since, until)
    dropped = await connection.fetch(_DROPPED, funnel, list(stages), since, until)
    values: dict[str, dict[str, Any]] = {stage: {} for stage in stages}
    for row in reached:
        values[stages[row["idx"]]].update(
            reached=row["reached"], median_s=row["median_s"], p90_s=row["p90_s"]
        )
    for row in current:
        if row["current_stage"] in values:
            values[row["current_stage"]].update(
                in_progress=row["in_progress"], stalled=row["stalled"]
            )
    for row in blocked:
        if row["current_stage"] in values:
            values[row["current_stage"]]["blocked"] = row["blocked"]
    for row in dropped:
        if row["stage"] in values:
            values[row["stage"]]["dropped"] = row["dropped"]
    return {stage: StageCounts(**fields) for stage, fields in values.items()}
