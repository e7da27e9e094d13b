"""Replay safety that does not depend on the messageId window (``decide(..., position=...)``).

A record delivered again after a crash or a rebalance (its offset was not committed)
meets the state it already produced. The state remembers, per input stream, the
offset of the last record applied, so the replayed record changes nothing, however
many records came after it. Plain pytest, no faust.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from funnel_shared.events import ContactEvent, StageChanged
from funnel_stage_engine.domain.commands import Forward, Link, Tick
from funnel_stage_engine.domain.contact import Decision, Message, Position, decide
from funnel_stage_engine.domain.definitions import Funnel, load_funnels
from funnel_stage_engine.domain.engine import DEFAULT_DEDUPE_WINDOW, ContactState

from tests.support.contact_events import START, contact_event

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
EVENTS = "funnel.contact-events.v1"
COMMANDS = "funnel-stage-engine-contact-commands"


@pytest.fixture(scope="module")
def funnels() -> list[Funnel]:
    return load_funnels()


def _decide(
    state: ContactState, message: Message, funnels: list[Funnel], position: Position | None
) -> Decision:
    return decide(state, message, funnels=funnels, processed_at=NOW, position=position)


def _run(
    funnels: list[Funnel], records: list[tuple[ContactEvent, int]], state: ContactState
) -> tuple[ContactState, list[StageChanged]]:
    changes: list[StageChanged] = []
    for event, offset in records:
        decision = _decide(state, event, funnels, Position.of(EVENTS, 3, offset))
        state = state if decision.state is None else decision.state
        changes += [o for o in decision.outputs if isinstance(o, StageChanged)]
    return state, changes


def test_an_order_replayed_after_more_events_than_the_window_changes_nothing(
    funnels: list[Funnel],
) -> None:
    order = contact_event("c-1", "track", "Order Completed", properties={"total": 30})
    views = [
        contact_event("c-1", "page", name="Home", at=START + timedelta(minutes=i + 1))
        for i in range(DEFAULT_DEDUPE_WINDOW + 50)
    ]
    records = [(order, 0), *((view, i + 1) for i, view in enumerate(views))]
    state, first = _run(funnels, records, ContactState())
    assert [c.to_stage for c in first if c.funnel == "lifecycle"] == ["customer"]
    assert order.message_id not in state.seen_message_ids  # Out of the window by now.

    # The whole partition again from offset 0, as after a crash before any commit.
    replayed, again = _run(funnels, records, state)

    assert again == []
    assert replayed == state


def test_a_record_past_the_last_applied_offset_is_applied_and_remembered(
    funnels: list[Funnel],
) -> None:
    signed_up = contact_event("c-1", "track", "Signed Up")
    decision = _decide(ContactState(), signed_up, funnels, Position.of(EVENTS, 3, 41))
    assert decision.state is not None and decision.store
    assert decision.state.positions == {f"{EVENTS}:3": 41}
    assert decision.outcome == "changed"

    at_it = _decide(decision.state, signed_up, funnels, Position.of(EVENTS, 3, 41))
    assert not at_it.outputs and not at_it.commands and at_it.outcome == "unchanged"
    # Stored again as it is: it brings a changelog a kill left behind up to date.
    assert at_it.state == decision.state and at_it.store

    # Another partition's offsets are another stream: compared with nothing else.
    other = contact_event("c-1", "track", "Demo Requested", at=START + timedelta(hours=1))
    elsewhere = _decide(decision.state, other, funnels, Position.of(EVENTS, 4, 7))
    assert elsewhere.outcome == "changed"
    assert elsewhere.state is not None
    assert elsewhere.state.positions == {f"{EVENTS}:3": 41, f"{EVENTS}:4": 7}


def test_an_event_forwarded_away_remembers_its_position_and_is_not_forwarded_again(
    funnels: list[Funnel],
) -> None:
    pointer = ContactState(merged_into="u-1")
    event = contact_event("x", "page", name="Pricing").model_copy(
        update={"user_id": None, "anonymous_id": "a-1"}
    )

    first = _decide(pointer, event, funnels, Position.of(EVENTS, 2, 10))
    assert first.outcome == "forwarded"
    [forward] = first.commands
    assert isinstance(forward, Forward)
    assert (forward.origin, forward.origin_offset) == (f"{EVENTS}:2", 10)
    assert first.state is not None and first.store
    assert first.state.merged_into == "u-1"

    replayed = _decide(first.state, event, funnels, Position.of(EVENTS, 2, 10))
    assert not replayed.commands and replayed.state == first.state


def test_a_forward_sent_twice_is_applied_once_however_much_the_owner_did_meanwhile(
    funnels: list[Funnel],
) -> None:
    """The anonymous side may forward an event again (its pointer's position was lost in a
    crash): the owner knows it by where the event was first read."""
    order = contact_event("x", "track", "Order Completed", properties={"total": 30})
    order = order.model_copy(update={"user_id": None, "anonymous_id": "a-1"})
    forward = Forward(user_id="u-1", event=order, origin=f"{EVENTS}:2", origin_offset=10)
    owner = _decide(ContactState(), forward, funnels, Position.of(COMMANDS, 5, 0)).state
    assert owner is not None and owner.positions[f"forward:{EVENTS}:2"] == 10
    views = [
        contact_event("u-1", "page", name="Home", at=START + timedelta(minutes=i + 1))
        for i in range(DEFAULT_DEDUPE_WINDOW + 5)
    ]
    owner, _ = _run(funnels, [(view, i) for i, view in enumerate(views)], owner)

    # The same event, forwarded again: a new record on the command topic.
    again = _decide(owner, forward, funnels, Position.of(COMMANDS, 5, 1))

    assert not again.outputs and again.state == owner
    # Forwarded events share no position with the owner's own partition.
    assert owner.positions[f"{EVENTS}:3"] == len(views) - 1


def test_a_merged_anonymous_contact_keeps_its_positions_in_the_pointer(
    funnels: list[Funnel],
) -> None:
    anonymous = ContactState(positions={f"{EVENTS}:2": 9})
    link = Link(anonymous_id="a-1", user_id="u-1", message_id="m-1", event_time=START)

    decision = _decide(anonymous, link, funnels, Position.of(COMMANDS, 2, 4))

    assert decision.state is not None
    assert decision.state.merged_into == "u-1"
    assert decision.state.positions == {f"{EVENTS}:2": 9, f"{COMMANDS}:2": 4}


def test_a_tick_that_fires_nothing_is_not_stored_for_its_position_alone(
    funnels: list[Funnel],
) -> None:
    tick = Tick(contact_id="c-1", now=START)
    decision = _decide(ContactState(), tick, funnels, Position.of(COMMANDS, 1, 3))
    assert decision.state is not None and not decision.store


def test_without_a_position_a_record_is_decided_as_before(funnels: list[Funnel]) -> None:
    event = contact_event("c-1", "track", "Signed Up")
    decision = _decide(ContactState(), event, funnels, None)
    assert decision.state is not None and decision.state.positions == {}
    assert decision.outcome == "changed"
