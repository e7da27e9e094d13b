"""Run the projection in the test's own event loop, and wait for what it stores."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from fastapi import FastAPI
from funnel_shared.events import AnyStageOutput, StageChanged
from funnel_shared.settings import DatabaseSettings, KafkaSettings
from funnel_stage_engine.metrics import StageEngineMetrics
from funnel_stage_engine.read.projection import Projection
from funnel_stage_engine.read.web import create_web_app

from tests.support.access import test_access
from tests.support.journey_set import funnels_under_test
from tests.support.stage_outputs import publish_outputs


@contextlib.asynccontextmanager
async def running_projection(
    kafka: KafkaSettings,
    *,
    database_url: str,
    topic: str,
    group_id: str,
    report_funnels: Sequence[tuple[str, Sequence[str]]] = (),
) -> AsyncIterator[Projection]:
    projection = Projection(
        kafka=kafka,
        database=DatabaseSettings(database_url=database_url),  # type: ignore[arg-type]
        topic=topic,
        group_id=group_id,
        retry_backoff_s=0.2,
        report_funnels=report_funnels,
    )
    task = asyncio.create_task(projection.run(), name="test-projection")
    try:
        yield projection
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_until(
    check: Callable[[], Awaitable[bool]], what: str, *, timeout_s: float = 90.0
) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def fetch_rows(database_url: str, query: str, *args: Any) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(database_url)
    try:
        return [dict(row) for row in await connection.fetch(query, *args)]
    finally:
        await connection.close()


async def count_rows(database_url: str, query: str, *args: Any) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval(query, *args))
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def projected(
    kafka: KafkaSettings, outputs: Sequence[AnyStageOutput], *, database_url: str, topic: str
) -> AsyncIterator[Projection]:
    """A running projection that has stored ``outputs`` (published here, in order)."""
    history = sum(isinstance(output, StageChanged) for output in outputs)
    others = len(outputs) - history
    group = f"test-projection-{uuid.uuid4().hex[:12]}"
    async with running_projection(
        kafka, database_url=database_url, topic=topic, group_id=group
    ) as projection:
        await publish_outputs(kafka, topic, outputs)

        async def stored() -> bool:
            rows = await count_rows(database_url, "SELECT count(*) FROM stage_history")
            other_rows = await count_rows(
                database_url,
                "SELECT (SELECT count(*) FROM stage_blocks) + (SELECT count(*) FROM stage_stalls)"
                " + (SELECT count(*) FROM contact_merges)",
            )
            return (rows, other_rows) == (history, others)

        await wait_until(stored, f"{len(outputs)} outputs to be projected")
        yield projection


def read_web_app(projection: Projection) -> FastAPI:
    """The stage engine's read API and pages over ``projection``, for the test funnels.

    It requires ``tests.support.access.TOKENS``: clients send ``AUTH_HEADERS``.
    """
    return create_web_app(
        funnels=funnels_under_test(),
        projection=projection,
        metrics=StageEngineMetrics(),
        worker_status=lambda: "",
        access=test_access(),
    )
