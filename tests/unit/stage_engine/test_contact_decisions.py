"""``domain.contact.decide``: what one message means for its contact (plain pytest, no faust)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from funnel_shared.events import ContactEvent, ContactMerged, StageChanged, StageStalled
from funnel_stage_engine.domain.commands import Forward, Link, Tick, Transfer
from funnel_stage_engine.domain.contact import (
    Decision,
    Message,
    Refusal,
    decide,
    seen_at,
    subject,
)
from funnel_stage_engine.domain.definitions import Funnel, load_funnels
from funnel_stage_engine.domain.engine import ContactState

from tests.support.contact_events import contact_event

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def funnels() -> list[Funnel]:
    return load_funnels()


def _anonymous(anonymous_id: str, name: str = "Pricing") -> ContactEvent:
    event = contact_event("x", "page", name=name)
    return event.model_copy(update={"user_id": None, "anonymous_id": anonymous_id})


def _decide(state: ContactState, message: Message, funnels: list[Funnel]) -> Decision:
    return decide(state, message, funnels=funnels, processed_at=NOW)


def test_an_event_that_moves_a_contact_is_a_change_and_leaves_the_given_state_alone(
    funnels: list[Funnel],
) -> None:
    state = ContactState()
    event = contact_event("c-1", "track", "Signed Up")

    decision = _decide(state, event, funnels)

    assert decision.outcome == "changed"
    assert decision.state is not None and decision.store
    assert decision.state.funnels["lifecycle"].current == "lead"
    [change] = [o for o in decision.outputs if isinstance(o, StageChanged)]
    assert (change.contact_id, change.to_stage, change.processed_at) == ("c-1", "lead", NOW)
    assert decision.commands == [] and decision.refused is None
    assert state == ContactState()


def test_a_replayed_event_changes_nothing_and_its_state_is_stored_again(
    funnels: list[Funnel],
) -> None:
    event = contact_event("c-1", "track", "Signed Up")
    first = _decide(ContactState(), event, funnels)
    assert first.state is not None

    replay = _decide(first.state, event, funnels)

    assert (replay.outcome, replay.outputs, replay.commands) == ("unchanged", [], [])
    # Stored even when unchanged: it re-sends a changelog record a crash may have lost.
    assert replay.state == first.state and replay.store


def test_an_anonymous_event_of_a_merged_contact_is_forwarded_to_its_owner(
    funnels: list[Funnel],
) -> None:
    pointer = ContactState(merged_into="u-1")
    event = _anonymous("a-1")

    decision = _decide(pointer, event, funnels)

    assert decision.outcome == "forwarded"
    assert decision.commands == [Forward(user_id="u-1", event=event)]
    assert [subject(command) for command in decision.commands] == ["u-1"]
    assert (decision.state, decision.outputs) == (None, ())


def test_a_forwarded_event_is_evaluated_for_the_owner(funnels: list[Funnel]) -> None:
    event = contact_event("a-1", "track", "Signed Up")
    event = event.model_copy(update={"user_id": None, "anonymous_id": "a-1"})

    decision = _decide(ContactState(), Forward(user_id="u-1", event=event), funnels)

    assert decision.outcome == "changed"
    assert {o.contact_id for o in decision.outputs} == {"u-1"}
    assert decision.state is not None and not decision.state.identified
    assert decision.commands == []  # A forwarded anonymous event links nothing.


def test_an_identify_asks_its_anonymous_id_to_link_once(funnels: list[Funnel]) -> None:
    identify = contact_event("u-1", "identify", anonymousId="a-1", traits={"email": "z@x.io"})

    first = _decide(ContactState(), identify, funnels)

    assert first.commands == [
        Link(
            anonymous_id="a-1",
            user_id="u-1",
            message_id=identify.message_id,
            event_time=identify.timestamp,
        )
    ]
    assert [subject(command) for command in first.commands] == ["a-1"]
    assert first.state is not None and first.state.linked == ["a-1"]
    again = contact_event("u-1", "identify", anonymousId="a-1")
    assert _decide(first.state, again, funnels).commands == []


def test_a_link_to_a_free_anonymous_contact_transfers_its_state_and_leaves_a_pointer(
    funnels: list[Funnel],
) -> None:
    anonymous = _decide(ContactState(), _anonymous("a-1"), funnels).state
    assert anonymous is not None
    link = Link(anonymous_id="a-1", user_id="u-1", message_id="m-1", event_time=NOW)

    decision = _decide(anonymous, link, funnels)

    assert decision.state == ContactState(merged_into="u-1")
    assert decision.commands == [
        Transfer(
            anonymous_id="a-1",
            user_id="u-1",
            message_id="m-1",
            event_time=NOW,
            state=anonymous.to_json(),
        )
    ]
    assert [subject(command) for command in decision.commands] == ["u-1"]
    assert (decision.outcome, decision.outputs, decision.refused) == ("unchanged", (), None)


def test_a_repeated_link_changes_nothing(funnels: list[Funnel]) -> None:
    link = Link(anonymous_id="a-1", user_id="u-1", message_id="m-1", event_time=NOW)

    assert _decide(ContactState(merged_into="u-1"), link, funnels) == Decision()


def test_a_link_to_a_contact_someone_else_owns_is_refused(funnels: list[Funnel]) -> None:
    link = Link(anonymous_id="a-1", user_id="u-2", message_id="m-1", event_time=NOW)

    decision = _decide(ContactState(merged_into="u-1"), link, funnels)

    assert decision.refused == Refusal(
        "link_rejected", "anonymousId 'a-1' already belongs to 'u-1'"
    )
    assert decision.outcome == "rejected"
    assert (decision.state, decision.commands, decision.outputs) == (None, (), ())


def test_a_transfer_merges_the_anonymous_history_into_the_owner(funnels: list[Funnel]) -> None:
    anonymous = _decide(ContactState(), contact_event("a-1", "track", "Signed Up"), funnels).state
    assert anonymous is not None
    anonymous.identified = False
    transfer = Transfer(
        anonymous_id="a-1",
        user_id="u-1",
        message_id="m-1",
        event_time=NOW,
        state=anonymous.to_json(),
    )

    decision = _decide(ContactState(), transfer, funnels)

    merged = [o for o in decision.outputs if isinstance(o, ContactMerged)]
    assert {(m.contact_id, m.merged_contact_id) for m in merged} == {("u-1", "a-1")}
    assert decision.outcome == "changed"  # u-1 was outside the funnel: the merge moves it.
    assert decision.state is not None
    assert decision.state.funnels["lifecycle"].current == "lead"
    replay = _decide(decision.state, transfer, funnels)
    assert (replay.outcome, replay.outputs) == ("unchanged", [])


def test_a_tick_past_a_deadline_stalls_the_contact_and_is_stored(funnels: list[Funnel]) -> None:
    lead = _decide(ContactState(), contact_event("u-1", "track", "Signed Up", at=NOW), funnels)
    assert lead.state is not None

    decision = _decide(lead.state, Tick(contact_id="u-1", now=NOW + timedelta(days=15)), funnels)

    assert [(o.funnel, o.stage) for o in decision.outputs if isinstance(o, StageStalled)] == [
        ("lifecycle", "lead")
    ]
    assert decision.store and decision.outcome == "unchanged"
    assert decision.state is not None
    assert decision.state.funnels["lifecycle"].stall_at is None


def test_a_tick_before_any_deadline_is_remembered_but_not_stored(funnels: list[Funnel]) -> None:
    lead = _decide(ContactState(), contact_event("u-1", "track", "Signed Up", at=NOW), funnels)
    assert lead.state is not None

    decision = _decide(lead.state, Tick(contact_id="u-1", now=NOW + timedelta(days=1)), funnels)

    assert (decision.outputs, decision.outcome, decision.store) == ([], "unchanged", False)
    assert decision.state == lead.state


def test_a_message_is_about_one_contact_and_only_events_show_its_event_time() -> None:
    event = contact_event("u-1", "track", "Signed Up", at=NOW)
    link = Link(anonymous_id="a-1", user_id="u-1", message_id="m", event_time=NOW)
    transfer = Transfer(anonymous_id="a-1", user_id="u-1", message_id="m", event_time=NOW, state={})
    tick = Tick(contact_id="t-1", now=NOW)
    forward = Forward(user_id="u-2", event=event)

    assert [subject(m) for m in (event, link, transfer, tick, forward)] == [
        "u-1",
        "a-1",
        "u-1",
        "t-1",
        "u-2",
    ]
    assert [seen_at(m) for m in (event, link, transfer, tick, forward)] == [
        NOW,
        None,
        None,
        None,
        NOW,
    ]
