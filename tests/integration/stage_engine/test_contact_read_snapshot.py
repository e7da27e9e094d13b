"""A contact read is one snapshot: a projection commit that lands between its queries
shows either entirely or not at all (real PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from funnel_stage_engine.read.projection_store import ProjectionStore
from funnel_stage_engine.read.reads import contact_rows

from tests.support.stage_outputs import journey

pytestmark = pytest.mark.integration


class _CommitAfterFirstQuery:
    """A pool whose connection runs ``between`` (once) right after its first query."""

    def __init__(self, pool: asyncpg.Pool, between: Callable[[], Awaitable[None]]) -> None:
        self._pool, self._between = pool, between

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        async with self._pool.acquire() as connection:
            yield _Connection(connection, self._between)


class _Connection:
    def __init__(self, connection: Any, between: Callable[[], Awaitable[None]]) -> None:
        self._connection, self._between = connection, between
        self._queries = 0

    def transaction(self, **kwargs: Any) -> Any:
        return self._connection.transaction(**kwargs)

    async def fetch(self, *args: Any) -> Any:
        rows = await self._connection.fetch(*args)
        self._queries += 1
        if self._queries == 1:
            await self._between()
        return rows


async def test_a_change_committed_between_the_queries_of_a_contact_read_is_not_half_seen(
    projection_database: str,
) -> None:
    contact = f"snap-{uuid.uuid4().hex[:8]}"
    [change] = journey(contact, "journey", [("visitor", datetime.now(UTC))], stages=["visitor"])
    async with asyncpg.create_pool(projection_database, min_size=2, max_size=2) as pool:

        async def commit_the_change() -> None:
            await ProjectionStore(pool).apply([change])

        rows = await contact_rows(_CommitAfterFirstQuery(pool, commit_the_change), contact)  # type: ignore[arg-type]
        # The first query (current stages) ran before the commit: so must every other one.
        assert rows["current"] == []
        assert rows["history"] == []

        # Read again: now all of it.
        rows = await contact_rows(pool, contact)
        assert [r["current_stage"] for r in rows["current"]] == ["visitor"]
        assert [r["to_stage"] for r in rows["history"]] == ["visitor"]
