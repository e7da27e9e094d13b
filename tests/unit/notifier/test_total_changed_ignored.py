"""The notifier knows running-total records and acts on none of them."""

from __future__ import annotations

from datetime import UTC, datetime

from funnel_notifier.domain.triggers import Ignored, decode
from funnel_shared.events import TotalChanged

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_a_running_total_is_a_known_kind_that_triggers_nothing() -> None:
    total = TotalChanged(
        id="t-1",
        funnel="value",
        funnel_version="v1",
        contact_id="c-1",
        rule_id="lifetime",
        to_stage="lifetime",
        property="revenue",
        total=250.0,
        at_least=1000.0,
        within_seconds=None,
        amounts=1,
        ignored=0,
        sequence=1,
        cause_message_id="m-1",
        cause_kind="event",
        event_time=AT,
        processed_at=AT,
    )
    assert decode(total.model_dump_json(by_alias=True).encode()) == Ignored(
        "total_changed", known=True
    )
