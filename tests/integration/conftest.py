from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.processes import StageEngineWorker

pytestmark = pytest.mark.integration

StageEngineFactory = Callable[..., StageEngineWorker]


@pytest.fixture
def stage_engine_worker(
    kafka_env: dict[str, str], topic_env: dict[str, str], tmp_path: Path
) -> Iterator[StageEngineFactory]:
    """Build stage-engine workers on this test's topics, with their own app id and data dir.

    Each worker is stopped at the end of the test, whatever happened to it.
    """
    workers: list[StageEngineWorker] = []

    def build(**env: str) -> StageEngineWorker:
        workdir = tmp_path / f"worker-{len(workers)}"
        workdir.mkdir()
        worker = StageEngineWorker(
            env={
                **kafka_env,
                **topic_env,
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
