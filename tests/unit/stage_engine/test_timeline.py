"""The contact page's timeline: one list across funnels, causes before what they caused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from funnel_shared.events import CountExplanation, Explanation, SumExplanation
from funnel_stage_engine.read.api_models import (
    ContactFunnelView,
    ContactView,
    HistoryEntry,
    MergeView,
    StallView,
)
from funnel_stage_engine.read.timeline import explain, timeline

T0 = datetime(2026, 11, 23, 9, tzinfo=UTC)


def _change(to: str, at: datetime, *, cause_kind: str = "event", source: str = "m") -> HistoryEntry:
    return HistoryEntry(
        id=f"c-{to}-{cause_kind}",
        from_stage="lead",
        to_stage=to,
        furthest_stage=to,
        rule_id=cause_kind,
        cause_message_id=source,
        cause_kind=cause_kind,
        event_time=at,
        processed_at=at + timedelta(seconds=1),
        funnel_version="v1",
    )


def test_a_merge_and_a_stall_come_before_the_changes_they_caused_at_the_same_time() -> None:
    stall_at, merge_at = T0 + timedelta(days=2), T0 + timedelta(days=3)
    view = ContactView(
        contact_id="me",
        merged_into=None,
        funnels=[
            ContactFunnelView(
                funnel="f",
                funnel_version="v1",
                current_stage="lead",
                furthest_stage="prospect",
                entered_at=T0,
                stalled_at=None,
                traits={},
                # Stored first, yet caused by the stall and the merge stored after them.
                history=[
                    _change("visitor", stall_at, cause_kind="stall"),
                    _change("prospect", merge_at, cause_kind="merge"),
                ],
                blocked=[],
                stalls=[
                    StallView(
                        id="s1",
                        stage="lead",
                        entered_at=T0,
                        stalled_after_seconds=172800,
                        move_to="visitor",
                        event_time=stall_at,
                        processed_at=stall_at,
                        funnel_version="v1",
                    )
                ],
            )
        ],
        merges=[
            MergeView(
                id="m1",
                merge_id="mid",
                funnel="f",
                contact_id="me",
                merged_contact_id="anon",
                current_stage="prospect",
                furthest_stage="prospect",
                merged_current_stage="prospect",
                merged_furthest_stage="prospect",
                cause_message_id="identify-1",
                event_time=merge_at,
                processed_at=merge_at,
            )
        ],
    )
    rows = timeline(view)
    assert [(row.kind, row.cause) for row in rows] == [
        ("stall", "stall"),
        ("change", "stall"),
        ("merge", "merge"),
        ("change", "merge"),
    ]
    assert rows[0].what == "stalled in lead after 2 d (moved to visitor)"
    assert rows[2].other_contact == "anon"


def test_a_counted_and_a_summed_rule_explain_themselves() -> None:
    count = CountExplanation(matches=3, at_least=3, within_seconds=7 * 86400)
    total = SumExplanation(property="revenue", total=-20.5, at_least=100, within_seconds=None)
    assert explain(Explanation(count=count)) == "3 matching events within 7 d (at least 3)"
    assert explain(Explanation(sum=total)) == "revenue totalled -20.5 over all time (at least 100)"
    assert explain(None) is None
