"""Batches through the handler: one publish per batch, states stored only after it."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest
from funnel_shared.events import ContactEvent, RejectedRecord
from funnel_stage_engine.domain.definitions import load_funnels
from funnel_stage_engine.domain.engine import ContactState, evaluate
from funnel_stage_engine.worker.batch import Inbound

from tests.support.contact_events import START, contact_event
from tests.support.stage_engine_handler import NOW, TOPICS, handler_under_test

STEPS = [
    ("page", None, {"name": "Home"}),
    ("track", "Signed Up", {}),
    ("track", "Demo Requested", {}),
    ("track", "Order Completed", {"properties": {"total": 30}}),
    ("track", "Order Completed", {"properties": {"total": 90}}),
]


def _journeys(contacts: int) -> list[ContactEvent]:
    """Each contact walks STEPS; contacts interleaved, so one batch holds several of each."""
    return [
        contact_event(f"c-{c}", kind, name, at=START + timedelta(hours=step), **fields)
        for step, (kind, name, fields) in enumerate(STEPS)
        for c in range(contacts)
    ]


def _inbound(events: list[ContactEvent]) -> list[Inbound]:
    return [Inbound(key=e.contact_key.encode(), value=e.model_dump_json().encode()) for e in events]


def _one_at_a_time(events: list[ContactEvent]) -> tuple[list[str], dict[str, Any]]:
    """The pure engine, event by event: output ids in order, and the final states."""
    funnels = load_funnels()
    states: dict[str, ContactState] = defaultdict(ContactState)
    ids: list[str] = []
    for event in events:
        result = evaluate(states[event.contact_key], event, funnels=funnels, processed_at=NOW)
        states[event.contact_key] = result.state
        ids += [output.id for output in result.outputs]
    return ids, {contact: state.to_json() for contact, state in states.items()}


async def test_a_batch_yields_what_its_events_yield_one_at_a_time_with_one_publish() -> None:
    handler, states, publisher = handler_under_test()
    events = _journeys(contacts=3)
    again = events[4]  # A re-sent event inside the same batch changes nothing.

    outcomes = await handler.handle_batch(_inbound([*events, again]))

    expected_ids, expected_states = _one_at_a_time(events)
    assert [headers["ce_id"] for _, _, _, headers in publisher.sent] == expected_ids
    # One publish_all: every output buffered and acknowledged before any state was stored.
    assert publisher.buffered == len(expected_ids)
    assert states.acked_at_store == [len(expected_ids)] * len(states.data)
    assert states.data == expected_states
    assert len(outcomes) == len(events) + 1 and outcomes[-1] == "unchanged"


async def test_a_batch_whose_publish_fails_stores_no_state_at_all() -> None:
    events = _journeys(contacts=4)
    poison = events[len(events) // 2]

    def trips_on_poison(state: ContactState, event: ContactEvent, **kwargs: Any) -> Any:
        if event.message_id == poison.message_id:
            raise RuntimeError("rule evaluation failed")
        return evaluate(state, event, **kwargs)

    # The stage changes are acknowledged; the poison event's dead letter is not.
    handler, states, publisher = handler_under_test(
        fail_with=ConnectionError("broker unreachable"), evaluate=trips_on_poison
    )
    publisher.fail_topic = TOPICS.rejected

    with pytest.raises(ConnectionError):
        await handler.handle_batch(_inbound(events))

    # Some acks came back, one did not: no contact of the batch may move on in the table.
    assert len(publisher.sent) > 2
    assert states.data == {}
    assert handler.metrics.registry.get_sample_value(
        "funnel_stage_engine_events_processed_total", {"outcome": "changed"}
    ) in (None, 0)


async def test_a_poison_event_in_a_batch_is_dead_lettered_and_the_rest_go_on() -> None:
    events = _journeys(contacts=2)
    poison = events[3]  # c-1 signs up: this one trips the rules.

    def trips_on_poison(state: ContactState, event: ContactEvent, **kwargs: Any) -> Any:
        if event.message_id == poison.message_id:
            raise RuntimeError("rule evaluation failed")
        return evaluate(state, event, **kwargs)

    handler, states, publisher = handler_under_test(evaluate=trips_on_poison)
    outcomes = await handler.handle_batch(_inbound(events))

    assert outcomes[3] == "rejected"
    [dead] = [value for topic, _, value, _ in publisher.sent if topic == TOPICS.rejected]
    assert RejectedRecord.model_validate_json(dead).original == poison.model_dump_json()
    healthy = [event for event in events if event is not poison]
    expected_ids, expected_states = _one_at_a_time(healthy)
    published = [h["ce_id"] for topic, _, _, h in publisher.sent if topic != TOPICS.rejected]
    assert published == expected_ids
    assert states.data == expected_states
