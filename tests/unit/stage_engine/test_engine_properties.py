"""Properties of the engine over arbitrary event sequences (hypothesis)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from funnel_shared.events import ContactEvent
from funnel_stage_engine.domain.definitions import load_funnels
from funnel_stage_engine.domain.engine import ContactState, evaluate
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.journeys import PROCESSED_AT, T0, contact_event, drive, funnel

BACK_AND_FORTH = funnel(
    """
name: back-and-forth
ordering: free
stages: [a, b, c]
rules:
  - {id: to-c, to: c, match: {event: Order Completed}}
  - {id: to-a, to: a, match: {event: Order Refunded}}
  - {id: to-b, to: b, match: {type: page}, count: {at_least: 2, within: 1d}}
"""
)
FUNNELS = [*load_funnels(), BACK_AND_FORTH]

EVENT_NAMES = sorted(
    {
        name
        for f in FUNNELS
        for rule in f.definition.rules
        for match in rule.match
        for name in match.event or []
    }
    | {"Order Refunded", "Something Else"}
)

track_fields = st.fixed_dictionaries(
    {"type": st.just("track"), "event": st.sampled_from(EVENT_NAMES)}
)
page_fields = st.fixed_dictionaries(
    {
        "type": st.just("page"),
        "name": st.sampled_from(["Pricing", "Home", None]),
        "context": st.sampled_from([{}, {"page": {"path": "/pricing"}}]),
    }
)
identify_fields = st.fixed_dictionaries(
    {"type": st.just("identify"), "traits": st.sampled_from([{}, {"email": "a@example.com"}])}
)


@st.composite
def events(draw: st.DrawFn) -> ContactEvent:
    fields: dict[str, Any] = draw(st.one_of(track_fields, page_fields, identify_fields))
    # A small pool of message ids, so that redeliveries happen.
    message_id = f"m-{draw(st.integers(0, 30))}"
    # Event times out of order, spread over a month.
    at = T0 + timedelta(hours=draw(st.integers(0, 24 * 30)))
    kind = fields.pop("type")
    return contact_event(kind, message_id=message_id, at=at, **fields)


sequences = st.lists(events(), max_size=25)


@settings(max_examples=75, deadline=None)
@given(sequences)
def test_the_furthest_stage_never_decreases(sequence: list[ContactEvent]) -> None:
    state = ContactState()
    by_name = {f.name: f.definition for f in FUNNELS}
    furthest: dict[str, int] = {}
    for event in sequence:
        state = evaluate(state, event, funnels=FUNNELS, processed_at=PROCESSED_AT).state
        for name, position in state.funnels.items():
            definition = by_name[name]
            reached = definition.index(position.furthest)
            assert reached >= furthest.get(name, -1)
            assert reached >= definition.index(position.current)
            furthest[name] = reached


@settings(max_examples=75, deadline=None)
@given(sequences)
def test_replaying_a_sequence_yields_the_same_output_ids(sequence: list[ContactEvent]) -> None:
    _, first = drive(FUNNELS, sequence)
    state = ContactState()
    replayed = []
    for event in sequence:
        # A later run, with the state read back from its stored form at every step.
        stored = state.to_json()
        result = evaluate(
            ContactState.from_json(stored),
            event,
            funnels=FUNNELS,
            processed_at=PROCESSED_AT + timedelta(days=1),
        )
        state = result.state
        replayed.extend(result.outputs)
    assert [o.id for o in replayed] == [o.id for o in first]


@settings(max_examples=50, deadline=None)
@given(sequences)
def test_redelivering_a_whole_sequence_changes_nothing(sequence: list[ContactEvent]) -> None:
    state, _ = drive(FUNNELS, sequence)
    again, outputs = drive(FUNNELS, sequence, state=state)
    assert outputs == []
    assert again == state


# Values as JSON can carry them: the topics hold RFC 8259 JSON, which has no NaN or
# Infinity (ingest refuses them with 400).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=10,
)
json_objects = st.dictionaries(
    st.sampled_from(["email", "page", "traits", "price", "path", "x.y", ""]),
    json_values,
    max_size=4,
)


@settings(max_examples=75, deadline=None)
@given(
    kind=st.sampled_from(["track", "identify", "page", "screen", "group", "alias"]),
    properties=json_objects,
    context=json_objects,
    traits=json_objects,
)
def test_any_json_in_an_event_is_evaluated_without_error(
    kind: str, properties: dict[str, Any], context: dict[str, Any], traits: dict[str, Any]
) -> None:
    conditions = funnel(
        """
name: conditions
stages: [a, b]
rules:
  - id: many
    to: b
    match:
      properties: {price: {gt: 1}, path: {prefix: /p}, x.y: {contains: 1}, email: {in: [1, a]}}
      context: {page.path: {prefix: /pricing}, traits.email: {exists: true}}
      traits: {email: {contains: "@"}}
  - {id: any, to: a, match: {}}
"""
    )
    event = contact_event(
        kind,
        event="Order Completed",
        groupId="g-1",
        previousId="p-1",
        properties=properties,
        context=context,
        traits=traits,
    )
    result = evaluate(
        ContactState(), event, funnels=[*FUNNELS, conditions], processed_at=PROCESSED_AT
    )
    assert ContactState.from_json(result.state.to_json()) == result.state
