"""Integration fixtures: a migrated database, a producer, and in-process notifiers
(the real runtime) against the test broker and database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from funnel_notifier.runtime import Runtime
from funnel_notifier.settings import NotifierSettings
from funnel_shared.settings import DatabaseSettings, KafkaSettings, TopicSettings
from pydantic import SecretStr

from tests.conftest import create_topics, migrated_copy, run_migrate, unique
from tests.support.notifier_support import write_rules
from tests.support.processes import StageEngineWorker

pytestmark = pytest.mark.integration

StageEngineFactory = Callable[..., StageEngineWorker]


@pytest.fixture
def stage_engine_worker(
    kafka_env: dict[str, str], topic_env: dict[str, str], projection_database: str, tmp_path: Path
) -> Iterator[StageEngineFactory]:
    """Build stage-engine workers on this test's topics, with their own app id and data dir,
    and the projection in this test's migrated database.

    Each worker is stopped at the end of the test, whatever happened to it.
    """
    workers: list[StageEngineWorker] = []
    database_url = projection_database

    def build(**env: str) -> StageEngineWorker:
        workdir = tmp_path / f"worker-{len(workers)}"
        workdir.mkdir()
        worker = StageEngineWorker(
            env={
                **kafka_env,
                **topic_env,
                "DATABASE_URL": database_url,
                "STAGE_ENGINE_APP_ID": f"test-stage-engine-{uuid.uuid4().hex[:12]}",
                **env,
            },
            workdir=workdir,
        )
        workers.append(worker)
        return worker

    try:
        yield build
    finally:
        for worker in workers:
            worker.stop()


@pytest.fixture
async def migrated_database(postgres_admin_dsn: str) -> str:
    """A database with the notifier's tables, for this test."""
    return await migrated_copy(postgres_admin_dsn, "funnel-notifier")


StartNotifier = Callable[..., Awaitable[Runtime]]

FAST = {
    "poll_interval_s": 0.2,
    "attempt_timeout_s": 2.0,
    "claim_grace_s": 1.0,
    "backoff_base_s": 0.2,
    "backoff_max_s": 1.0,
    "retry_backoff_s": 0.2,
    "max_attempts": 4,
}


@pytest.fixture
async def start_notifier(
    kafka_settings: KafkaSettings, topics: TopicSettings, migrated_database: str, tmp_path: Path
) -> AsyncIterator[StartNotifier]:
    runtimes: list[Runtime] = []

    async def start(rules: str, env: dict[str, str] | None = None, **overrides: Any) -> Runtime:
        directory = tmp_path / f"rules-{len(runtimes)}"
        write_rules(directory, rules)
        settings = NotifierSettings(
            group_id=unique("notifier"), rules_dir=directory, **{**FAST, **overrides}
        )
        runtime = Runtime(
            settings=settings,
            kafka=kafka_settings,
            topics=topics,
            database=DatabaseSettings(database_url=SecretStr(migrated_database)),
            env=env or {},
        )
        runtimes.append(runtime)
        await runtime.start()
        return runtime

    yield start
    for runtime in reversed(runtimes):
        await runtime.stop()


@pytest.fixture
async def db(migrated_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(migrated_database, min_size=1, max_size=3)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def projection_database(postgres_admin_dsn: str) -> str:
    """This test's database with the stage engine's tables."""
    return await migrated_copy(postgres_admin_dsn, "funnel-stage-engine")


@pytest.fixture(scope="module")
async def module_topics(kafka_settings: KafkaSettings) -> TopicSettings:
    """Topics for a module whose tests only read what one fixture published."""
    return await create_topics(kafka_settings)


@pytest.fixture(scope="module")
async def module_projection_database(postgres_admin_dsn: str) -> str:
    """A database with the stage engine's tables, for a module of read-only tests."""
    return await migrated_copy(postgres_admin_dsn, "funnel-stage-engine")


def migrate_stage_engine(database_url: str) -> None:
    run_migrate("funnel-stage-engine", database_url)
