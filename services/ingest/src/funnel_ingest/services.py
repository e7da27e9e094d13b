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

__all__ = ["IngestServices", "Services", "services_of"]


@dataclass(frozen=True)
class IngestServices:
    settings: IngestSettings
    topics: TopicSettings
    producer: ProducerHandle
    metrics: IngestMetrics
    limiter: RateLimiter | None


def services_of(request: Request) -> IngestServices:
    """The app's services; the tracking routes call this instead of a dependency, whose
    resolution is a measurable share of a single event's cost."""
    services: IngestServices = request.app.state.services
    return services


async def _services(request: Request) -> IngestServices:
    # async: a plain def dependency runs in the anyio threadpool on every request.
    return services_of(request)


Services = Annotated[IngestServices, Depends(_services)]
