"""Dead letters: what a service could not process, on ``funnel.rejected.v1``."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from funnel_shared.events._wire import Wire

__all__ = ["RejectedRecord"]


class RejectedRecord(Wire):
    """Something a service could not process: a value on ``funnel.rejected.v1``."""

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    service: str = Field(description="The service that rejected it, e.g. 'ingest'.")
    origin: str = Field(description="Where it came from: an HTTP route or a topic name.")
    key: str | None = None
    errors: list[str]
    original: str = Field(description="The original record, as text (undecodable bytes escaped).")
    rejected_at: datetime
