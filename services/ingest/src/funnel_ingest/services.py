"""What the routes need, built once per app by ``create_app`` and reached through a dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from funnel_shared.settings import TopicSettings

from funnel_ingest.metrics import IngestMetrics
from funnel_ingest.produce import ProducerHandle
from funnel_ingest.ratelimit import RateLimiter
from funnel_ingest.settings import IngestSettings

__all__ = ["IngestServices", "Services"]


@dataclass(frozen=True)
class IngestServices:
    settings: IngestSettings
    topics: TopicSettings
    producer: ProducerHandle
    metrics: IngestMetrics
    limiter: RateLimiter | None


async def _services(request: Request) -> IngestServices:
    # async: a plain def dependency runs in the anyio threadpool on every request.
    services: IngestServices = request.app.state.services
    return services


Services = Annotated[IngestServices, Depends(_services)]
