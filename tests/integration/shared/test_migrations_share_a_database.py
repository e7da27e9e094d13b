"""The notifier and the stage engine keep their tables in one PostgreSQL database
(docker-compose and `make dev` give both the same DATABASE_URL), so their migrations
must not collide, whichever runs first."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from funnel_notifier.main import migrate as migrate_notifier
from funnel_shared.settings import DatabaseSettings
from pydantic import SecretStr

from tests.integration.conftest import migrate_stage_engine


async def _tables(database_url: str) -> set[str]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await connection.close()
    return {row["table_name"] for row in rows}


@pytest.mark.parametrize("stage_engine_first", [True, False])
async def test_both_services_migrate_one_database_in_either_order(
    database_url: str, stage_engine_first: bool
) -> None:
    settings = DatabaseSettings(database_url=SecretStr(database_url))
    steps = [
        lambda: migrate_stage_engine(database_url),
        lambda: migrate_notifier(settings),
    ]
    if not stage_engine_first:
        steps.reverse()
    for step in steps:
        await asyncio.to_thread(step)
    # Twice: every later `up` or `make dev` runs them again.
    for step in steps:
        await asyncio.to_thread(step)

    tables = await _tables(database_url)
    assert {"stage_history", "contact_stages", "followups", "followup_contact_stages"} <= tables
    assert {"alembic_version_notifier", "alembic_version_stage_engine"} <= tables
