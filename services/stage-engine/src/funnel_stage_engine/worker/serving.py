"""What runs beside the faust agent in the worker: the HTTP app and the projection.

Both live on the worker's event loop. uvicorn replaces faust's aiohttp server
(``faust.contrib.asgi.serve_asgi``: started after table recovery, stopped by
the worker on SIGTERM/SIGINT, which owns the signals). The projection is a
mode service of its own (``app.service``), so a slow or absent PostgreSQL
never blocks the agent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import faust
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from faust.contrib.asgi import serve_asgi
from funnel_shared.auth import Access
from funnel_shared.settings import DatabaseSettings, KafkaSettings, TopicSettings

from funnel_stage_engine.domain.definitions import Funnel
from funnel_stage_engine.metrics import StageEngineMetrics
from funnel_stage_engine.read.projection import Projection, projection_service
from funnel_stage_engine.read.web import create_web_app
from funnel_stage_engine.settings import StageEngineSettings

__all__ = ["attach_http_and_projection"]


def attach_http_and_projection(
    app: faust.App,
    *,
    settings: StageEngineSettings,
    kafka: KafkaSettings,
    topics: TopicSettings,
    database: DatabaseSettings | None,
    funnels: Sequence[Funnel],
    metrics: StageEngineMetrics,
    liveness: Callable[[], str] = lambda: "",
) -> Projection:
    projection = Projection(
        kafka=kafka,
        database=database or DatabaseSettings(),
        topic=topics.stage_changed,
        group_id=f"{settings.app_id}-projection",
        rejected_topic=topics.rejected,
        metrics=metrics,
        max_record_bytes=settings.max_record_bytes,
        report_funnels=[(funnel.name, funnel.definition.stages) for funnel in funnels],
    )
    app.service(projection_service(projection))
    assigned = {"yes": False}

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # faust types want the signal arg
    async def on_assigned(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned["yes"] = True

    def worker_status() -> str:
        if not assigned["yes"] or app.rebalancing:
            return "joining consumer group"
        return ""

    web = create_web_app(
        funnels=funnels,
        projection=projection,
        metrics=metrics,
        worker_status=worker_status,
        access=Access.of(settings.api_tokens, metrics_require_token=settings.metrics_require_token),
    )

    @web.middleware("http")
    async def healthz_with_liveness(request: Request, call_next: Any) -> Response:
        # /healthz says 503 (with the reason) when the worker should be restarted.
        if request.url.path == "/healthz":
            problem = liveness()
            if problem:
                return JSONResponse({"status": problem}, status_code=503)
        response: Response = await call_next(request)
        return response

    serve_asgi(app, web, host=settings.host, port=settings.port, access_log=False)
    return projection
