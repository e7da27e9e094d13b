"""The stage engine's handler, with a fake publisher and a dict for the table."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from funnel_shared.events import RejectedRecord, StageChanged, stage_change_id
from funnel_shared.kafka import OutboundRecord
from funnel_shared.publishing import publish_all
from funnel_stage_engine.worker.adapters import FaustPublisher
from funnel_stage_engine.worker.handler import ContactEventHandler

from tests.support.contact_events import contact_event
from tests.support.stage_engine_handler import NOW, TOPICS, handler_under_test


def _sample(handler: ContactEventHandler, name: str, **labels: str) -> float | None:
    return handler.metrics.registry.get_sample_value(name, labels)


async def test_stage_changes_are_published_before_the_contact_state_is_stored() -> None:
    handler, states, publisher = handler_under_test()
    event = contact_event("c-1", "track", "Signed Up")

    outcome = await handler.handle(key=b"c-1", value=event.model_dump_json().encode())

    assert outcome == "changed"
    # Every state was stored only once all the records were acknowledged.
    assert publisher.sent and states.acked_at_store == [len(publisher.sent)]
    assert states.data["c-1"]["funnels"]["lifecycle"]["current"] == "lead"
    lead = [StageChanged.model_validate_json(value) for _, _, value, _ in publisher.sent]
    [change] = [c for c in lead if c.funnel == "lifecycle"]
    assert change.id == stage_change_id(
        funnel="lifecycle", contact_id="c-1", message_id=event.message_id, to_stage="lead"
    )
    assert change.processed_at == NOW
    topic, key, _, headers = publisher.sent[lead.index(change)]
    assert (topic, key) == (TOPICS.stage_changed, "c-1")
    assert (headers["ce_id"], headers["ce_type"]) == (change.id, "funnel.stage_changed")
    changes = _sample(
        handler, "funnel_stage_engine_stage_changes_total", funnel="lifecycle", to_stage="lead"
    )
    assert changes == 1
    assert _sample(handler, "funnel_stage_engine_events_processed_total", outcome="changed") == 1


async def test_a_failed_publish_propagates_and_leaves_the_state_untouched() -> None:
    handler, states, publisher = handler_under_test(fail_with=ConnectionError("broker unreachable"))
    event = contact_event("c-1", "track", "Signed Up")

    with pytest.raises(ConnectionError):
        await handler.handle(key=b"c-1", value=event.model_dump_json().encode())

    assert states.data == {}
    assert publisher.sent == []  # Not dead-lettered either: the event is not at fault.


async def test_a_replayed_event_publishes_nothing_the_second_time() -> None:
    handler, _, publisher = handler_under_test()
    value = contact_event("c-1", "track", "Signed Up").model_dump_json().encode()
    await handler.handle(key=b"c-1", value=value)
    published = len(publisher.sent)

    assert await handler.handle(key=b"c-1", value=value) == "unchanged"
    assert len(publisher.sent) == published


async def test_an_undecodable_record_is_dead_lettered_with_the_reason() -> None:
    handler, states, publisher = handler_under_test()

    assert await handler.handle(key=b"c-1", value=b"\xff not json") == "rejected"

    [(topic, key, value, headers)] = publisher.sent
    rejected = RejectedRecord.model_validate_json(value)
    assert (topic, key, rejected.key, rejected.origin) == (
        TOPICS.rejected,
        "c-1",
        "c-1",
        TOPICS.contact_events,
    )
    assert rejected.original == "\\xff not json"
    assert "ValidationError" in rejected.errors[0]
    assert headers["ce_type"] == "funnel.rejected.v1"
    assert states.data == {}
    assert _sample(handler, "funnel_stage_engine_rejected_total", reason="invalid_event") == 1


async def test_an_event_that_makes_evaluation_fail_is_dead_lettered_and_stores_nothing() -> None:
    def exploding(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("a rule divided by zero")

    handler, states, publisher = handler_under_test(evaluate=exploding)
    event = contact_event("c-1", "track", "Signed Up")

    assert await handler.handle(key=b"c-1", value=event.model_dump_json().encode()) == "rejected"

    [(topic, _, value, _)] = publisher.sent
    assert topic == TOPICS.rejected
    assert RejectedRecord.model_validate_json(value).errors == [
        "ZeroDivisionError: a rule divided by zero"
    ]
    assert states.data == {}
    assert _sample(handler, "funnel_stage_engine_rejected_total", reason="evaluation_failed") == 1


class _PendingProducer:
    """A faust producer whose send() returns a future the test resolves: the broker's ack."""

    def __init__(self) -> None:
        self.acks: list[asyncio.Future[object]] = []

    async def send(self, *args: Any) -> asyncio.Future[object]:
        self.acks.append(asyncio.get_running_loop().create_future())
        return self.acks[-1]


def _outbound(count: int) -> list[tuple[str, OutboundRecord]]:
    return [("out", OutboundRecord(key=f"k{i}", value=b"v", headers=[])) for i in range(count)]


async def _publish(publisher: FaustPublisher, records: list[tuple[str, OutboundRecord]]) -> None:
    """What the handler does with a batch's records: one publish_all, any failure raised."""
    (await publish_all(publisher, records)).raise_first()


async def test_the_faust_publisher_sends_a_whole_batch_and_returns_once_all_are_acknowledged() -> (
    None
):
    topic = _PendingProducer()
    publisher = FaustPublisher(lambda: topic)  # type: ignore[arg-type,return-value]
    publishing = asyncio.create_task(_publish(publisher, _outbound(3)))
    for _ in range(10):
        await asyncio.sleep(0)
    assert len(topic.acks) == 3  # All sent before any ack came back.

    topic.acks[0].set_result(object())
    topic.acks[2].set_result(object())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not publishing.done()
    topic.acks[1].set_result(object())
    await asyncio.wait_for(publishing, 5)


async def test_one_failed_ack_fails_the_whole_publish() -> None:
    topic = _PendingProducer()
    publisher = FaustPublisher(lambda: topic)  # type: ignore[arg-type,return-value]
    publishing = asyncio.create_task(_publish(publisher, _outbound(2)))
    for _ in range(10):
        await asyncio.sleep(0)
    topic.acks[0].set_result(object())
    topic.acks[1].set_exception(ConnectionError("no ack"))
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(publishing, 5)
