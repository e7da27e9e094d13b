"""The stage engine's handler, with a fake publisher and a dict for the table."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from funnel_shared.cloudevents import header_map
from funnel_shared.events import RejectedRecord, StageChanged, stage_change_id
from funnel_shared.kafka import OutboundRecord
from funnel_shared.settings import TopicSettings
from funnel_stage_engine.domain.definitions import load_funnels
from funnel_stage_engine.metrics import StageEngineMetrics
from funnel_stage_engine.worker.adapters import FaustPublisher
from funnel_stage_engine.worker.batch import Outbound
from funnel_stage_engine.worker.handler import ContactEventHandler

from tests.support.contact_events import contact_event

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TOPICS = TopicSettings()


class DictStates:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    def get(self, contact_id: str, *, origin: Any) -> Mapping[str, Any] | None:
        return self.data.get(contact_id)

    def set(self, contact_id: str, state: dict[str, Any], *, origin: Any) -> None:
        self.data[contact_id] = state


class FakePublisher:
    """Records what was published, and what the state store held at that moment.

    With ``fail_on=n``, the ack of the n-th record fails (the batch's other records
    are acknowledged): the whole publish fails, as the faust publisher's does.
    """

    def __init__(self, states: DictStates, *, fail_on: int | None = None) -> None:
        self.sent: list[tuple[str, str, bytes, dict[str, str]]] = []
        self.stored_when_sent: list[bool] = []
        self.batches: list[int] = []
        self._states = states
        self._fail_on = fail_on
        self._count = 0

    async def publish_all(self, records: Sequence[Outbound]) -> None:
        failed = False
        for out in records:
            self._count += 1
            if self._count == self._fail_on:
                failed = True
                continue
            self.stored_when_sent.append(out.record.key in self._states.data)
            self.sent.append(
                (out.topic, out.record.key, out.record.value, header_map(out.record.headers))
            )
        self.batches.append(len(records))
        if failed:
            raise ConnectionError("broker unreachable")


def _handler(
    *, fail_on: int | None = None, evaluate: Any = None
) -> tuple[ContactEventHandler, DictStates, FakePublisher]:
    states = DictStates()
    publisher = FakePublisher(states, fail_on=fail_on)
    handler = ContactEventHandler(
        funnels=load_funnels(),
        states=states,
        publisher=publisher,
        topics=TOPICS,
        metrics=StageEngineMetrics(),
        clock=lambda: NOW,
    )
    if evaluate is not None:
        handler.evaluate = evaluate
    return handler, states, publisher


def _sample(handler: ContactEventHandler, name: str, **labels: str) -> float | None:
    return handler.metrics.registry.get_sample_value(name, labels)


async def test_stage_changes_are_published_before_the_contact_state_is_stored() -> None:
    handler, states, publisher = _handler()
    event = contact_event("c-1", "track", "Signed Up")

    outcome = await handler.handle(key=b"c-1", value=event.model_dump_json().encode())

    assert outcome == "changed"
    assert publisher.sent and publisher.stored_when_sent == [False] * len(publisher.sent)
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
    handler, states, publisher = _handler(fail_on=1)
    event = contact_event("c-1", "track", "Signed Up")

    with pytest.raises(ConnectionError):
        await handler.handle(key=b"c-1", value=event.model_dump_json().encode())

    assert states.data == {}
    assert publisher.sent == []  # Not dead-lettered either: the event is not at fault.


async def test_a_replayed_event_publishes_nothing_the_second_time() -> None:
    handler, _, publisher = _handler()
    value = contact_event("c-1", "track", "Signed Up").model_dump_json().encode()
    await handler.handle(key=b"c-1", value=value)
    published = len(publisher.sent)

    assert await handler.handle(key=b"c-1", value=value) == "unchanged"
    assert len(publisher.sent) == published


async def test_an_undecodable_record_is_dead_lettered_with_the_reason() -> None:
    handler, states, publisher = _handler()

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

    handler, states, publisher = _handler(evaluate=exploding)
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


def _outbound(count: int) -> list[Outbound]:
    return [
        Outbound("out", OutboundRecord(key=f"k{i}", value=b"v", headers=[])) for i in range(count)
    ]


async def test_the_faust_publisher_sends_a_whole_batch_and_returns_once_all_are_acknowledged() -> (
    None
):
    topic = _PendingProducer()
    publisher = FaustPublisher(lambda: topic)  # type: ignore[arg-type,return-value]
    publishing = asyncio.create_task(publisher.publish_all(_outbound(3)))
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
    publishing = asyncio.create_task(publisher.publish_all(_outbound(2)))
    for _ in range(10):
        await asyncio.sleep(0)
    topic.acks[0].set_result(object())
    topic.acks[1].set_exception(ConnectionError("no ack"))
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(publishing, 5)
