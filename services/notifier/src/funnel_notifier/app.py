"""The notifier process: an HTTP app whose lifespan runs the stage-change consumer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from funnel_shared.kafka import AiokafkaPublisher, consumer_kwargs, producer_kwargs
from funnel_shared.settings import DatabaseSettings, KafkaSettings, TopicSettings

from funnel_notifier.consumer import StageChangeConsumer
from funnel_notifier.settings import NotifierSettings
from funnel_notifier.store import PostgresStageChangeStore

__all__ = ["create_app"]

log = logging.getLogger("funnel.notifier")


def create_app(
    *,
    settings: NotifierSettings,
    kafka: KafkaSettings,
    topics: TopicSettings,
    database: DatabaseSettings,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(database.dsn, min_size=1, max_size=5)
        producer = AIOKafkaProducer(**producer_kwargs(kafka, client_id="notifier"))
        consumer = AIOKafkaConsumer(
            topics.stage_changed,
            **consumer_kwargs(kafka, client_id="notifier", group_id=settings.group_id),
        )
        await producer.start()
        await consumer.start()
        store = PostgresStageChangeStore(pool)
        worker = StageChangeConsumer(
            consumer=consumer,
            store=store,
            publisher=AiokafkaPublisher(producer),
            rejected_topic=topics.rejected,
            retry_backoff_s=settings.retry_backoff_s,
        )
        app.state.store = store
        app.state.worker = worker
        task = asyncio.create_task(worker.run(), name="stage-change-consumer")
        task.add_done_callback(_crash_loudly)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await consumer.stop()
            await producer.stop()
            await pool.close()

    app = FastAPI(title="Funnel notifier", version="0.1.0", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        try:
            await asyncio.wait_for(request.app.state.store.ping(), timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return JSONResponse({"status": "database unreachable"}, status_code=503)
        if not request.app.state.worker.assigned:
            return JSONResponse({"status": "joining consumer group"}, status_code=503)
        return JSONResponse({"status": "ready"})

    return app


def _crash_loudly(task: asyncio.Task[None]) -> None:
    # A consumer loop that dies must not leave a process that looks healthy:
    # stop the server so the supervisor (or the orchestrator) restarts it.
    if not task.cancelled() and task.exception() is not None:
        log.critical("stage-change consumer stopped", exc_info=task.exception())
        os.kill(os.getpid(), signal.SIGTERM)
