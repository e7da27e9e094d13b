"""A contact read uses indexes only: no sequential scan of the history tables.

The projection is loaded with 20,000 contacts (about 42,000 stage changes, stalls, merges,
refused skips: the report benchmark's generator), 20,000 more refused skips, 20,000
running totals and 20,000 follow-ups, then analysed, so
the planner chooses as it does in production (on a table of a few rows a sequential scan
is the cheaper plan and would prove nothing). Every query the contact read and the
contact page run is then explained, for a contact with a merge, a stall and a refused
skip, and its plan must read each table by an index.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from funnel_bench.report_data import load_projection
from funnel_stage_engine.read.followups import _QUERY as FOLLOWUPS_QUERY
from funnel_stage_engine.read.reads import CONTACT_QUERIES

from tests.conftest import migrated_copy

pytestmark = pytest.mark.integration

CONTACTS = 20_000

_FOLLOWUPS = """
INSERT INTO followups
    (id, stage_change_id, rule_id, trigger, channel, funnel, contact_id, stage,
     unless_moved_on, record, status, due_at)
SELECT gen_random_uuid(), 'c' || i || ':1', 'welcome', 'entered', 'email', 'lifecycle',
       'c' || i, 'lead', true, '{}', 'scheduled', now() + i * interval '1 minute'
FROM generate_series(1, $1::integer) AS i
"""

# The generator refuses a skip for 1% of contacts: a table so small a scan is cheaper. A
# strict funnel refuses many: one more per contact, so the table is of a realistic size.
_BLOCKS = """
INSERT INTO stage_blocks
    (id, funnel, funnel_version, contact_id, current_stage, attempted_stage, rule_id,
     cause_message_id, event_time, processed_at)
SELECT 'c' || i || ':block2', 'lifecycle', 'bench', 'c' || i, 'visitor', 'customer',
       'rule-3', 'c' || i || ':mb2', now(), now()
FROM generate_series(1, $1::integer) AS i
"""

# A running total per contact (a summed rule), as the projection keeps them.
_TOTALS = """
INSERT INTO contact_totals
    (contact_id, funnel, rule_id, funnel_version, to_stage, property, total, at_least,
     amounts, ignored, sequence, last_id, cause_message_id, cause_kind, event_time,
     processed_at)
SELECT 'c' || i, 'lifecycle', 'big-spender', 'bench', 'customer', 'revenue', i, 1000, 1, 0,
       1, 'c' || i || ':t', 'c' || i || ':mt', 'event', now(), now()
FROM generate_series(1, $1::integer) AS i
"""


def _scans(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """(node type, table) of every node of a plan that reads a table."""
    found = []
    if "Relation Name" in plan:
        found.append((plan["Node Type"], plan["Relation Name"]))
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


async def test_every_query_of_a_contact_read_uses_an_index(postgres_admin_dsn: str) -> None:
    url = await migrated_copy(postgres_admin_dsn, "funnel-stage-engine", "funnel-notifier")
    connection = await asyncpg.connect(url)
    try:
        await load_projection(connection, contacts=CONTACTS)
        await connection.execute(_FOLLOWUPS, CONTACTS)
        await connection.execute(_BLOCKS, CONTACTS)
        await connection.execute(_TOTALS, CONTACTS)
        await connection.execute("ANALYZE")
        # A contact with every kind of row: merged into, stalled, and a refused skip.
        contact = await connection.fetchval(
            """
            SELECT m.contact_id FROM contact_merges m
            JOIN stage_stalls s ON s.contact_id = m.contact_id
            JOIN stage_blocks b ON b.contact_id = m.contact_id
            LIMIT 1
            """
        ) or await connection.fetchval("SELECT contact_id FROM contact_merges LIMIT 1")
        queries = {**CONTACT_QUERIES, "followups": FOLLOWUPS_QUERY}
        for name, query in queries.items():
            args: list[object] = [contact] + ([200] if name == "followups" else [])
            rows = await connection.fetch(query, *args)
            assert rows or name in {"blocked", "stalls"}, f"{name}: no rows for {contact}"
            explained = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *args)
            scans = _scans(json.loads(explained)[0]["Plan"])
            assert scans, name
            sequential = [table for node, table in scans if node == "Seq Scan"]
            assert not sequential, f"{name} scans {sequential} sequentially: {scans}"
    finally:
        await connection.close()
