"""Stalls: deadlines set on entry, fired once by ``advance``, cancelled by leaving the stage."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from funnel_shared.events import StageChanged, StageStalled, stage_stalled_id
from funnel_stage_engine.domain.definitions import FunnelDefinitionError, load_funnels
from funnel_stage_engine.domain.engine import ContactState
from funnel_stage_engine.domain.stalls import advance, next_deadline

from tests.support.journeys import PROCESSED_AT, T0, days, drive, funnel, track

TRIAL = funnel(
    """
name: trial
stages: [trial, dormant, paid]
rules:
  - {id: sign-up, to: trial, match: {event: Signed Up}}
  - {id: order, to: paid, match: {event: Order Completed}}
stalls:
  - {stage: trial, after: 14d, move_to: dormant}
  - {stage: paid, after: 30d}
"""
)


def _advance(
    state: ContactState, now: datetime
) -> tuple[ContactState, list[StageStalled | StageChanged]]:
    return advance(
        state, contact_id="contact-1", now=now, funnels=[TRIAL], processed_at=PROCESSED_AT
    )


def test_entering_a_stage_with_a_stall_rule_sets_its_deadline_on_event_time() -> None:
    state, _ = drive([TRIAL], [track("Signed Up", at=T0)])
    assert next_deadline(state) == T0 + days(14)


def test_no_stall_before_the_deadline() -> None:
    state, _ = drive([TRIAL], [track("Signed Up", at=T0)])
    assert _advance(state, T0 + days(13.9)) == (state, [])


def test_a_stalled_contact_is_announced_once_and_moved() -> None:
    entry = track("Signed Up", at=T0, message_id="m-entry")
    state, _ = drive([TRIAL], [entry])

    after, outputs = _advance(state, T0 + days(20))
    again, more = _advance(after, T0 + days(40))

    stalled, moved = outputs
    assert isinstance(stalled, StageStalled) and isinstance(moved, StageChanged)
    assert stalled.id == stage_stalled_id(
        funnel="trial", contact_id="contact-1", stage="trial", entry_id="m-entry"
    )
    assert (stalled.stage, stalled.event_time, stalled.move_to) == (
        "trial",
        T0 + days(14),
        "dormant",
    )
    assert (moved.from_stage, moved.to_stage, moved.cause_kind) == ("trial", "dormant", "stall")
    assert moved.cause_message_id == stalled.id
    assert after.funnels["trial"].current == "dormant"
    assert more == [] and again == after


def test_the_same_stay_yields_the_same_stall_id_on_replay() -> None:
    state, _ = drive([TRIAL], [track("Signed Up", at=T0, message_id="m-entry")])
    first = _advance(state, T0 + days(15))[1]
    later = _advance(state, T0 + days(99))[1]
    assert [o.id for o in first] == [o.id for o in later]


def test_leaving_the_stage_before_the_deadline_cancels_the_stall() -> None:
    state, _ = drive(
        [TRIAL], [track("Signed Up", at=T0), track("Order Completed", at=T0 + days(2))]
    )
    assert next_deadline(state) == T0 + days(32)  # The paid stage's own rule.
    assert _advance(state, T0 + days(20)) == (state, [])


def test_a_stall_without_a_move_only_announces() -> None:
    state, _ = drive([TRIAL], [track("Order Completed", at=T0)])
    after, outputs = _advance(state, T0 + days(31))
    assert [type(o) for o in outputs] == [StageStalled]
    assert after.funnels["trial"].current == "paid" and next_deadline(after) is None


@pytest.mark.parametrize(
    ("stalls", "problem"),
    [
        ("[{stage: one, after: 1d, move_to: gone}]", "stalls[0].move_to: unknown stage 'gone'"),
        ("[{stage: zero, after: 1d}]", "stalls[0].stage: unknown stage 'zero'"),
        ("[{stage: one, after: 1d, move_to: one}]", "cannot move a contact to the same stage"),
        ("[{stage: one, after: 1d}, {stage: one, after: 2d}]", "'one' has 2 stall rules"),
        ("[{stage: one, after: soon}]", "stalls[0].after: 'soon' is not a duration like"),
    ],
)
def test_invalid_stall_rules_are_refused_with_the_field(stalls: str, problem: str) -> None:
    text = f"""
name: bad
stages: [one, two]
rules: [{{id: one, to: one, match: {{event: One}}}}]
stalls: {stalls}
"""
    with pytest.raises(FunnelDefinitionError) as caught:
        funnel(text)
    assert problem in str(caught.value)


def test_a_stall_may_be_a_decimal_duration() -> None:
    text = """
name: decimal
stages: [one, two]
rules: [{id: one, to: one, match: {event: One}}]
stalls: [{stage: one, after: 1.5h}]
"""
    assert funnel(text).definition.stalls[0].after == timedelta(minutes=90)


def test_the_lifecycle_funnel_stalls_leads_after_two_weeks() -> None:
    [lifecycle] = [f for f in load_funnels() if f.name == "lifecycle"]
    rule = lifecycle.definition.stall_rule("lead")
    assert rule is not None and rule.after == days(14)


def test_a_deadline_of_a_funnel_no_longer_configured_is_dropped() -> None:
    state, _ = drive([TRIAL], [track("Signed Up", at=T0)])
    after, outputs = advance(
        state, contact_id="contact-1", now=T0, funnels=[], processed_at=PROCESSED_AT
    )
    assert outputs == [] and next_deadline(after) is None
