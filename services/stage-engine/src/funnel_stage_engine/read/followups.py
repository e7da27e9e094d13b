"""The notifier's follow-ups of one contact, read-only, for the contact page.

The notifier owns the ``followups`` table. In the dev stack and docker-compose both
services share one PostgreSQL database, so the stage engine can show them; a
deployment with two databases has no such table here, and the page says that
follow-ups are not available. Only the columns named below are read, in a
read-only transaction: the notifier's schema may grow, never this coupling.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

__all__ = ["MAX_FOLLOWUPS", "FollowUpRow", "contact_followups"]

# A contact has a handful; the page shows at most this many, the newest.
MAX_FOLLOWUPS = 200

_QUERY = """
SELECT id::text, rule_id, channel, funnel, stage, status, due_at, sent_at, attempts,
       left(last_error, 300) AS last_error, stage_change_id
FROM followups WHERE contact_id = $1
ORDER BY due_at DESC, id LIMIT $2
"""


@dataclass(frozen=True)
class FollowUpRow:
    id: str
    rule_id: str
    channel: str
    funnel: str
    stage: str | None
    status: str  # The notifier's follow-up status: scheduled, sending, retrying, sent, ...
    due_at: datetime
    sent_at: datetime | None
    attempts: int
    last_error: str | None
    stage_change_id: str


async def contact_followups(pool: asyncpg.Pool, contact_id: str) -> list[FollowUpRow] | None:
    """The contact's follow-ups, newest due first; None when this database has none."""
    try:
        async with pool.acquire() as connection, connection.transaction(readonly=True):
            if await connection.fetchval("SELECT to_regclass('followups')") is None:
                return None
            rows = await connection.fetch(_QUERY, contact_id, MAX_FOLLOWUPS)
    except asyncpg.UndefinedColumnError:
        return None  # A notifier schema this version cannot read.
    return [FollowUpRow(**dict(row)) for row in rows]
