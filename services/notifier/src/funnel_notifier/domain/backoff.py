"""When to try again: exponential backoff with full jitter, and ``Retry-After``.

Pure: the random draw and the current time are arguments.
"""

from __future__ import annotations

import email.utils
from datetime import datetime

__all__ = ["is_final_status", "next_delay_s", "parse_retry_after"]


def next_delay_s(*, attempt: int, base_s: float, cap_s: float, draw: float) -> float:
    """Delay before attempt ``attempt + 1``, after ``attempt`` failures (1, 2, ...).

    "Full jitter" (AWS architecture blog): uniform in [0, min(cap, base * 2^(n-1))],
    with ``draw`` in [0, 1). Half of the window is kept as a floor so a retry
    never comes back at once.
    """
    window = min(cap_s, base_s * 2.0 ** max(attempt - 1, 0))
    return window / 2 + (window / 2) * min(max(draw, 0.0), 1.0)


def parse_retry_after(value: str | None, *, now: datetime, cap_s: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), cap_s)


def is_final_status(status: int) -> bool:
    """A response no retry can fix: 4xx other than 408 (timeout) and 429 (slow down)."""
    return 400 <= status < 500 and status not in (408, 429)
