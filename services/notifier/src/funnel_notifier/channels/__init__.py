"""Delivery channels: each turns one follow-up into one attempt and reports the outcome.

May import ``funnel_notifier.domain`` (backoff, signing), ``funnel_shared`` and the
client library of its own channel (aiohttp, aiosmtplib and jinja2, the shared publisher).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Channel", "Delivery", "Outcome"]


@dataclass(frozen=True)
class Delivery:
    """What a channel needs to know about the follow-up it delivers."""

    followup_id: str
    rule_id: str
    trigger: str
    funnel: str
    contact_id: str
    stage: str | None
    stage_change_id: str
    record: dict[str, Any]  # The triggering record, as received.

    @property
    def traits(self) -> dict[str, Any]:
        traits = self.record.get("traits")
        return traits if isinstance(traits, dict) else {}


@dataclass(frozen=True)
class Outcome:
    ok: bool
    final: bool = False  # A failure no retry can fix.
    error: str | None = None
    status_code: int | None = None
    retry_after_s: float | None = None


class Channel(Protocol):
    async def deliver(self, delivery: Delivery, *, timeout_s: float) -> Outcome: ...
