"""Identity stitching: which links an event asks for, whether a link merges, and the merge."""

from __future__ import annotations

from collections.abc import Sequence

from funnel_shared.events import ContactEvent, ContactMerged, StageChanged, merge_id
from funnel_stage_engine.domain.definitions import Funnel
from funnel_stage_engine.domain.engine import ContactState, FunnelState
from funnel_stage_engine.domain.identity import link_verdict, links_to_request, merge

from tests.support.journeys import FREE, PROCESSED_AT, T0, days, drive, funnel, page, track

LADDER = funnel(
    """
name: ladder
stages: [visitor, lead, prospect, customer]
rules:
  - {id: pricing, to: prospect, match: {type: page, name: Pricing},
     count: {at_least: 3, within: 7d}}
  - {id: order, to: customer, match: {event: Order Completed}}
  - {id: signup, to: lead, match: {event: Signed Up}}
  - {id: visit, to: visitor, match: {type: [page, track]}}
"""
)
STEPS = funnel(
    """
name: steps
ordering: strict
stages: [one, two, three]
rules:
  - {id: one, to: one, match: {event: One}}
  - {id: two, to: two, match: {event: Two}}
  - {id: three, to: three, match: {event: Three}}
"""
)


def _merge(
    target: ContactState, source: ContactState, funnels: Sequence[Funnel] = (LADDER,)
) -> tuple[ContactState, list[ContactMerged | StageChanged]]:
    return merge(
        target,
        source,
        contact_id="user-1",
        merged_contact_id="anon-1",
        cause_message_id="m-identify",
        event_time=T0 + days(1),
        funnels=funnels,
        processed_at=PROCESSED_AT,
        dedupe_window=200,
    )


def _anonymous(funnels: Sequence[Funnel], *events: ContactEvent) -> ContactState:
    anonymous = [e.model_copy(update={"user_id": None, "anonymous_id": "anon-1"}) for e in events]
    state, _ = drive(funnels, anonymous)
    return state


def test_the_furthest_stage_wins_and_the_merge_is_announced() -> None:
    anonymous = _anonymous([LADDER], track("Signed Up"), track("Order Completed"))
    identified, _ = drive([LADDER], [track("Signed Up", contact="user-1")])

    state, outputs = _merge(identified, anonymous)

    assert (state.funnels["ladder"].current, state.funnels["ladder"].furthest) == (
        "customer",
        "customer",
    )
    merged, changed = outputs
    assert isinstance(merged, ContactMerged) and isinstance(changed, StageChanged)
    the_merge = merge_id(merged_contact_id="anon-1", contact_id="user-1")
    assert (merged.merge_id, merged.merged_current_stage, merged.current_stage) == (
        the_merge,
        "customer",
        "customer",
    )
    assert (changed.from_stage, changed.to_stage, changed.cause_kind) == (
        "lead",
        "customer",
        "merge",
    )
    assert (changed.cause_message_id, changed.rule_id) == (the_merge, "merge")


def test_an_identified_contact_further_along_keeps_its_stage() -> None:
    anonymous = _anonymous([LADDER], page("Home"))
    identified, _ = drive([LADDER], [track("Order Completed", contact="user-1")])

    state, outputs = _merge(identified, anonymous)

    assert state.funnels["ladder"].current == "customer"
    assert [type(output) for output in outputs] == [ContactMerged]


def test_windowed_counters_add_up_across_the_merge() -> None:
    anonymous = _anonymous([LADDER], page("Pricing", at=T0), page("Pricing", at=T0 + days(1)))
    state, _ = _merge(ContactState(), anonymous)
    after, outputs = drive([LADDER], [page("Pricing", contact="user-1", at=T0 + days(2))], state)

    assert after.funnels["ladder"].current == "prospect"
    assert [o.rule_id for o in outputs if isinstance(o, StageChanged)] == ["pricing"]


def test_traits_combine_and_the_identified_contact_wins() -> None:
    anonymous = ContactState(traits={"email": "old@example.com", "plan": "free"})
    identified = ContactState(traits={"email": "zoe@example.com"}, identified=True)
    state, _ = _merge(identified, anonymous)
    assert state.traits == {"email": "zoe@example.com", "plan": "free"}


def test_a_replayed_transfer_changes_nothing() -> None:
    anonymous = _anonymous([LADDER], track("Signed Up"))
    once, _ = _merge(ContactState(), anonymous)
    twice, outputs = _merge(once, anonymous)
    assert (twice, outputs) == (once, [])


def test_an_identified_source_is_never_merged() -> None:
    other_user = ContactState(
        funnels={"ladder": FunnelState(current="customer", furthest="customer")}, identified=True
    )
    state, outputs = _merge(ContactState(), other_user)
    assert (state.funnels, outputs) == ({}, [])


def test_a_strict_funnel_does_not_let_a_merge_skip_steps() -> None:
    anonymous = _anonymous([STEPS], track("One"), track("Two"), track("Three"))
    identified, _ = drive([STEPS], [track("One", contact="user-1")])
    state, _ = _merge(identified, anonymous, (STEPS,))
    assert (state.funnels["steps"].current, state.funnels["steps"].furthest) == ("one", "three")


def test_a_free_funnel_takes_the_more_recent_stage() -> None:
    anonymous = _anonymous([FREE], track("A", at=T0 + days(2)))
    identified, _ = drive([FREE], [track("C", contact="user-1", at=T0)])
    state, _ = _merge(identified, anonymous, (FREE,))
    assert (state.funnels["anywhere"].current, state.funnels["anywhere"].furthest) == ("a", "c")


def test_an_identify_links_its_anonymous_id_once() -> None:
    event = track("Signed Up", contact="user-1").model_copy(update={"anonymous_id": "anon-1"})
    assert links_to_request(ContactState(), event, "user-1") == ["anon-1"]
    assert links_to_request(ContactState(linked=["anon-1"]), event, "user-1") == []


def test_blocked_identity_values_never_link() -> None:
    event = track("Signed Up", contact="user-1").model_copy(update={"anonymous_id": "undefined"})
    assert links_to_request(ContactState(), event, "user-1") == []
    verdict, _ = link_verdict(ContactState(), anonymous_id="null", user_id="user-1")
    assert verdict == "reject"


def test_an_anonymous_id_already_owned_by_another_user_is_rejected_with_the_reason() -> None:
    owned = ContactState(merged_into="user-2")
    verdict, reason = link_verdict(owned, anonymous_id="anon-1", user_id="user-1")
    assert (verdict, reason) == ("reject", "anonymousId 'anon-1' already belongs to 'user-2'")
    assert link_verdict(owned, anonymous_id="anon-1", user_id="user-2")[0] == "duplicate"


def test_an_alias_to_a_known_user_id_is_rejected() -> None:
    known, _ = drive([LADDER], [track("Signed Up", contact="user-2")])
    assert known.identified
    verdict, reason = link_verdict(known, anonymous_id="user-2", user_id="user-1")
    assert verdict == "reject" and "never merged" in reason
    assert link_verdict(ContactState(), anonymous_id="anon-1", user_id="user-1")[0] == "merge"


def test_a_transfer_resent_with_more_history_merges_only_what_is_new() -> None:
    first = _anonymous([LADDER], page("Pricing", at=T0))
    more = _anonymous([LADDER], page("Pricing", at=T0), page("Pricing", at=T0 + days(1)))
    more.seen_message_ids = [*first.seen_message_ids, *more.seen_message_ids[1:]]
    more.counters["ladder"]["pricing"][0] = first.counters["ladder"]["pricing"][0]
    once, _ = _merge(ContactState(), first)

    twice, _ = _merge(once, more)
    again, outputs = _merge(twice, more)

    assert twice.counters["ladder"]["pricing"] == [T0, T0 + days(1)]
    assert (again, outputs) == (twice, [])
