"""Sending stall ticks: like every other output, awaited; a tick not acknowledged is re-sent.

The timer (``worker/app.py``) asks the deadline index which contacts are due and sends
one ``tick`` command per contact to the command topic, through the handler's
publisher, and awaits every ack. A contact whose tick was not acknowledged (or whose
send raised) is marked unsent, so the next check sends its tick again; one that was
acknowledged is not sent again until its state is stored (the tick processed) or the
index is rebuilt.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from funnel_shared.publishing import Publisher, publish_all

from funnel_stage_engine.domain.commands import Tick
from funnel_stage_engine.worker.handler import command_record

__all__ = ["send_ticks"]

log = logging.getLogger("funnel.stage_engine")


class Unsent(Protocol):
    def unsent(self, contact_id: str) -> None: ...


async def send_ticks(
    publisher: Publisher,
    due: Sequence[tuple[str, datetime]],
    *,
    commands_topic: str,
    deadlines: Unsent,
) -> int:
    """Send a tick per due (contact, event time); return how many were acknowledged."""
    ticks = [
        (commands_topic, command_record(Tick(contact_id=contact_id, now=now)))
        for contact_id, now in due
    ]
    try:
        acks = await publish_all(publisher, ticks)
    except Exception as exc:
        log.warning("stall ticks were not sent, sending them again at the next check: %r", exc)
        for contact_id, _ in due:
            deadlines.unsent(contact_id)
        return 0
    acknowledged = 0
    for (contact_id, _), outcome in zip(due, acks.outcomes, strict=True):
        if outcome is None:
            acknowledged += 1
            continue
        log.warning(
            "a stall tick for %r was not acknowledged, sending it again: %r", contact_id, outcome
        )
        deadlines.unsent(contact_id)
    return acknowledged
