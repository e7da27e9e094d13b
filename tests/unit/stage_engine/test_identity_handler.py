"""Identity and stalls through the handler, its commands looped back as the topic would."""

from __future__ import annotations

from datetime import timedelta

from funnel_shared.events import ContactMerged, RejectedRecord, StageChanged, StageStalled
from funnel_stage_engine.domain.commands import Tick
from funnel_stage_engine.worker.handler import ContactEventHandler

from tests.support.contact_events import contact_event
from tests.support.fake_publisher import FakePublisher
from tests.support.stage_engine_handler import COMMANDS, NOW, TOPICS, handler_under_test


async def _drain(handler: ContactEventHandler, publisher: FakePublisher, start: int) -> int:
    """Hand every command published since ``start`` back to the handler, until none is left."""
    done = start
    for _ in range(100):
        if done == len(publisher.sent):
            return done
        topic, key, value, _ = publisher.sent[done]
        done += 1
        if topic == COMMANDS:
            await handler.handle_command(key=key.encode(), value=value)
    raise AssertionError("commands kept coming")


def _anonymous(anonymous_id: str, name: str, **fields: object) -> bytes:
    event = contact_event("x", "page", name=name, **fields)
    event = event.model_copy(update={"user_id": None, "anonymous_id": anonymous_id})
    return event.model_dump_json().encode()


async def test_an_identify_merges_the_anonymous_contact_and_later_events_follow() -> None:
    handler, states, publisher = handler_under_test()
    await handler.handle(key=b"a-1", value=_anonymous("a-1", "Pricing"))
    await handler.handle(key=b"a-1", value=_anonymous("a-1", "Pricing"))
    identify = contact_event("u-1", "identify", anonymousId="a-1", traits={"email": "z@x.io"})
    await handler.handle(key=b"u-1", value=identify.model_dump_json().encode())
    done = await _drain(handler, publisher, 0)

    # The anonymous contact shrank to a pointer; its history went to u-1.
    assert (states.data["a-1"]["merged_into"], states.data["a-1"]["funnels"]) == ("u-1", {})
    merged = [
        ContactMerged.model_validate_json(value)
        for _, _, value, headers in publisher.sent
        if headers.get("ce_type") == "funnel.contact_merged"
    ]
    assert {m.funnel for m in merged} == {"lifecycle", "aida"}
    # The third pricing view, keyed by the anonymous id, completes u-1's count.
    await handler.handle(key=b"a-1", value=_anonymous("a-1", "Pricing"))
    await _drain(handler, publisher, done)
    assert states.data["u-1"]["funnels"]["lifecycle"]["current"] == "prospect"
    forwarded = [key for topic, key, _, _ in publisher.sent[done:] if topic == COMMANDS]
    assert forwarded == ["u-1"]


async def test_a_second_user_cannot_claim_an_anonymous_id() -> None:
    handler, states, publisher = handler_under_test()
    for user in ("u-1", "u-2"):
        event = contact_event(user, "identify", anonymousId="a-1", traits={"email": "z@x.io"})
        await handler.handle(key=user.encode(), value=event.model_dump_json().encode())
        await _drain(handler, publisher, 0)

    [rejected] = [
        RejectedRecord.model_validate_json(value)
        for topic, _, value, _ in publisher.sent
        if topic == TOPICS.rejected
    ]
    assert rejected.errors == ["ValueError: anonymousId 'a-1' already belongs to 'u-1'"]
    assert states.data["a-1"]["merged_into"] == "u-1"


async def test_a_tick_past_the_deadline_announces_the_stall_once() -> None:
    handler, states, publisher = handler_under_test()
    event = contact_event("u-1", "track", "Signed Up", at=NOW)
    await handler.handle(key=b"u-1", value=event.model_dump_json().encode())
    tick = Tick(contact_id="u-1", now=NOW + timedelta(days=15)).model_dump_json().encode()

    await handler.handle_command(key=b"u-1", value=tick)
    await handler.handle_command(key=b"u-1", value=tick)

    stalls = [
        StageStalled.model_validate_json(value)
        for _, _, value, headers in publisher.sent
        if headers.get("ce_type") == "funnel.stage_stalled"
    ]
    assert [(s.funnel, s.stage) for s in stalls] == [("lifecycle", "lead")]
    assert states.data["u-1"]["funnels"]["lifecycle"]["stall_at"] is None
    assert not any(
        StageChanged.model_validate_json(v).cause_kind == "stall"
        for _, _, v, h in publisher.sent
        if h.get("ce_type") == "funnel.stage_changed"
    )
