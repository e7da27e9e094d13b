"""The ingest HTTP app's composition root: settings, producer, middleware and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from funnel_shared.operations import operations_router
from funnel_shared.publishing import Publisher
from funnel_shared.settings import KafkaSettings, TopicSettings

from funnel_ingest import operations, tracking
from funnel_ingest.errors import IngestError, handle_ingest_error
from funnel_ingest.metrics import IngestMetrics, RequestMetricsMiddleware
from funnel_ingest.openapi import install_openapi
from funnel_ingest.produce import ProducerHandle
from funnel_ingest.ratelimit import RateLimiter
from funnel_ingest.services import IngestServices
from funnel_ingest.settings import IngestSettings

__all__ = ["create_app"]

DESCRIPTION = """Segment-compatible tracking API. Every 2xx means the broker has
acknowledged every accepted message (`acks=all`); a broker that is down or slow
gets 503 with `Retry-After`."""


def create_app(
    *,
    settings: IngestSettings,
    kafka: KafkaSettings,
    topics: TopicSettings,
    publisher: Publisher | None = None,
) -> FastAPI:
    """Tests pass a fake ``publisher``; production builds an aiokafka producer."""
    producer = ProducerHandle(
        kafka=None if publisher is not None else kafka,
        publisher=publisher,
        timeout_s=settings.produce_timeout_s,
    )
    services = IngestServices(
        settings=settings,
        topics=topics,
        producer=producer,
        metrics=IngestMetrics(),
        limiter=RateLimiter(settings.rate_limit) if settings.rate_limit else None,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await producer.open()
        try:
            yield
        finally:
            await producer.close()

    app = FastAPI(
        title="Funnel ingest", version="0.1.0", description=DESCRIPTION, lifespan=lifespan
    )
    app.state.services = services
    app.add_exception_handler(IngestError, handle_ingest_error)

    async def broker_problem() -> str | None:
        return None if await producer.ready() else "broker unreachable"

    app.include_router(tracking.router)
    app.include_router(
        operations_router(
            readiness=broker_problem,
            registry=services.metrics.registry,
            ready_summary="The broker is reachable",
            not_ready="The broker did not answer.",
        )
    )
    app.include_router(operations.router)
    # Browsers on other origins: text/plain posts need no preflight; posts with
    # Authorization or application/json do, and get it answered here.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Content-Encoding"],
        expose_headers=["Retry-After"],
        max_age=600,
    )
    app.add_middleware(RequestMetricsMiddleware, metrics=services.metrics)
    install_openapi(app)
    return app
