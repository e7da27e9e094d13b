"""The notifier process: an HTTP app whose lifespan runs the consumer and the dispatcher."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from funnel_shared.auth import Access
from funnel_shared.operations import operations_router
from funnel_shared.settings import DatabaseSettings, KafkaSettings, TopicSettings

from funnel_notifier.admin import router as admin_router
from funnel_notifier.runtime import Runtime
from funnel_notifier.settings import NotifierSettings

__all__ = ["create_app"]

log = logging.getLogger("funnel.notifier")


def create_app(
    *,
    settings: NotifierSettings,
    kafka: KafkaSettings,
    topics: TopicSettings,
    database: DatabaseSettings,
) -> FastAPI:
    runtime = Runtime(
        settings=settings, kafka=kafka, topics=topics, database=database, on_crash=_crash_loudly
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await runtime.start()
            app.state.pool = runtime.pool
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title="Funnel notifier", version="0.1.0", lifespan=lifespan)
    app.state.runtime = runtime
    access = Access.of(settings.api_tokens, metrics_require_token=settings.metrics_require_token)
    app.include_router(admin_router, dependencies=access.api())
    app.include_router(
        operations_router(
            readiness=runtime.ready,
            registry=runtime.metrics.registry,
            ready_summary="The database, the consumer group and the broker are reachable",
            not_ready="Not ready; status says which of them is not.",
            metrics_dependencies=access.metrics(),
        )
    )
    return app


def _crash_loudly(exc: BaseException) -> None:
    # A loop that dies must not leave a process that looks healthy: stop the
    # server so the supervisor (or the orchestrator) restarts it.
    log.critical("notifier loop stopped", exc_info=exc)
    os.kill(os.getpid(), signal.SIGTERM)
