"""Optional per-write-key rate limit: a moving window from the ``limits`` library, in memory.

In memory means per replica: N replicas allow N times the configured rate.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from funnel_ingest.errors import IngestError

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(self, rate: str) -> None:
        self._item: RateLimitItem = parse(rate)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, source: str) -> None:
        """Count one request for ``source``; 429 with Retry-After once over the limit."""
        if self._limiter.hit(self._item, source):
            return
        stats = self._limiter.get_window_stats(self._item, source)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise IngestError(
            429,
            "rate_limited",
            f"rate limit of {self._item} for this write key exceeded",
            headers={"Retry-After": str(retry_after)},
        )
