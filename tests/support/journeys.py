"""Building blocks for stage-engine unit tests: events, inline funnels, and a driver."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from funnel_shared.events import ContactEvent, StageBlocked, StageChanged
from funnel_stage_engine.domain.definitions import Funnel, parse_funnel
from funnel_stage_engine.domain.engine import ContactState, evaluate

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PROCESSED_AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def contact_event(
    kind: str,
    *,
    contact: str = "contact-1",
    message_id: str | None = None,
    at: datetime = T0,
    **fields: Any,
) -> ContactEvent:
    return ContactEvent.model_validate(
        {
            "type": kind,
            "messageId": message_id or str(uuid.uuid4()),
            "userId": contact,
            "timestamp": at.isoformat(),
            "receivedAt": at.isoformat(),
            "source": "web",
            **fields,
        }
    )


def track(event: str, **kwargs: Any) -> ContactEvent:
    return contact_event("track", event=event, **kwargs)


def page(name: str | None = None, **kwargs: Any) -> ContactEvent:
    return contact_event("page", name=name, **kwargs)


def identify(traits: dict[str, Any], **kwargs: Any) -> ContactEvent:
    return contact_event("identify", traits=traits, **kwargs)


def days(n: float) -> timedelta:
    return timedelta(days=n)


def funnel(text: str, *, file_name: str = "test.yaml") -> Funnel:
    """An inline YAML definition, validated exactly as a file would be."""
    return parse_funnel(text.encode(), path=Path(file_name))


Output = StageChanged | StageBlocked


def drive(
    funnels: Sequence[Funnel], events: Iterable[ContactEvent], state: ContactState | None = None
) -> tuple[ContactState, list[Output]]:
    """Feed events one by one, as the app does, keeping the state between them."""
    state = state or ContactState()
    outputs: list[Output] = []
    for event in events:
        result = evaluate(state, event, funnels=funnels, processed_at=PROCESSED_AT)
        state = result.state
        outputs.extend(result.outputs)
    return state, outputs


def moves(outputs: Iterable[Output], funnel_name: str) -> list[tuple[str | None, str]]:
    """(from, to) of every stage change in one funnel."""
    return [
        (output.from_stage, output.to_stage)
        for output in outputs
        if isinstance(output, StageChanged) and output.funnel == funnel_name
    ]


def blocked(outputs: Iterable[Output], funnel_name: str) -> list[tuple[str | None, str]]:
    """(current, attempted) of every blocked attempt in one funnel."""
    return [
        (output.current_stage, output.attempted_stage)
        for output in outputs
        if isinstance(output, StageBlocked) and output.funnel == funnel_name
    ]


# A free funnel (stages a, b, c; events A and C move there): for ordering and merge tests.
FREE = funnel(
    """
name: anywhere
ordering: free
stages: [a, b, c]
rules:
  - {id: a, to: a, match: {event: A}}
  - {id: c, to: c, match: {event: C}}
"""
)
