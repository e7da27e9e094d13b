from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.processes import StageEngineWorker, entry_point

pytestmark = pytest.mark.integration

StageEngineFactory = Callable[..., StageEngineWorker]


@pytest.fixture
def stage_engine_worker(
    kafka_env: dict[str, str], topic_env: dict[str, str], database_url: str, tmp_path: Path
) -> Iterator[StageEngineFactory]:
    """Build stage-engine workers on this test's topics, with their own app id and data dir,
    and the projection in this test's migrated database.

    Each worker is stopped at the end of the test, whatever happened to it.
    """
    workers: list[StageEngineWorker] = []
    migrate_stage_engine(database_url)

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
def projection_database(database_url: str) -> str:
    """This test's database with the stage engine's tables."""
    migrate_stage_engine(database_url)
    return database_url


def migrate_stage_engine(database_url: str) -> None:
    subprocess.run(
        [entry_point("funnel-stage-engine"), "migrate"],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url},
        check=True,
        capture_output=True,
        timeout=120,
    )
