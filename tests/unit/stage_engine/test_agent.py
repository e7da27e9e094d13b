"""The faust agent, in faust's test context: memory store, one fake per outbound dependency."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from funnel_shared.events import RejectedRecord
from funnel_shared.settings import KafkaSettings, TopicSettings
from funnel_stage_engine.domain.definitions import load_funnels
from funnel_stage_engine.domain.engine import evaluate
from funnel_stage_engine.settings import StageEngineSettings
from funnel_stage_engine.worker.app import StageEngineApp, create_app
from funnel_stage_engine.worker.batch import Inbound

from tests.support.contact_events import contact_event
from tests.support.fake_publisher import FakePublisher
from tests.support.stage_engine_agent import acknowledge_table_writes

TOPICS = TopicSettings()


async def _until(done: Callable[[], bool]) -> None:
    """The agent takes events in batches, after the test context has handed them over."""
    for _ in range(500):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the agent did not get there")


def _app(tmp_path: Path, publisher: FakePublisher, evaluate: Any = None) -> StageEngineApp:
    app = create_app(
        settings=StageEngineSettings(
            app_id=f"unit-{uuid.uuid4().hex[:8]}", store="memory://", data_dir=tmp_path
        ),
        kafka=KafkaSettings(),
        topics=TOPICS,
        funnels=load_funnels(),
        evaluate=evaluate,
    )
    app.handler.publisher = publisher
    acknowledge_table_writes(app)
    app.finalize()
    app.flow_control.resume()
    return app


def _count_batches(app: StageEngineApp) -> list[int]:
    """The size of every batch the agent hands to the handler, in order."""
    batches: list[int] = []
    handle_batch = app.handler.handle_batch

    async def counted(records: Sequence[Inbound]) -> Any:
        batches.append(len(records))
        return await handle_batch(records)

    app.handler.handle_batch = counted  # type: ignore[method-assign]
    return batches


async def test_an_event_that_trips_evaluation_is_dead_lettered_and_the_next_one_is_handled(
    tmp_path: Path,
) -> None:
    poison = contact_event("c-1", "track", "Signed Up")
    after = contact_event("c-1", "track", "Demo Requested")

    def trips_on_poison(state: Any, event: Any, **kwargs: Any) -> Any:
        if event.message_id == poison.message_id:
            raise RuntimeError("rule evaluation failed")
        return evaluate(state, event, **kwargs)

    publisher = FakePublisher()
    app = _app(tmp_path, publisher, evaluate=trips_on_poison)

    try:
        async with app.evaluate_contact_events.test_context() as agent:
            first = await agent.put(poison.model_dump_json().encode(), key=b"c-1")
            second = await agent.put(after.model_dump_json().encode(), key=b"c-1")
            await _until(lambda: second.message.acked)
    finally:
        # Acking builds faust's consumer, whose thread owns an event loop that is
        # closed only by running the thread, which a test context never does.
        app.consumer._thread.thread_loop.close()

    assert first.message.acked and second.message.acked
    [dead] = [value for topic, _, value, _ in publisher.sent if topic == TOPICS.rejected]
    assert RejectedRecord.model_validate_json(dead).errors == [
        "RuntimeError: rule evaluation failed"
    ]
    changes = [value for topic, _, value, _ in publisher.sent if topic == TOPICS.stage_changed]
    assert changes and all(after.message_id.encode() in value for value in changes)
    assert app.contact_to_state["c-1"]["funnels"]["lifecycle"]["current"] == "prospect"


async def test_records_waiting_together_are_handled_as_one_batch_and_all_acked(
    tmp_path: Path,
) -> None:
    events = [
        contact_event("c-1", "track", "Signed Up"),
        contact_event("c-2", "track", "Signed Up"),
        contact_event("c-1", "track", "Demo Requested"),
    ]
    publisher = FakePublisher()
    app = _app(tmp_path, publisher)
    batches = _count_batches(app)
    try:
        async with app.evaluate_contact_events.test_context() as agent:
            sent = [
                await agent.put(
                    e.model_dump_json().encode(), key=e.contact_key.encode(), wait=False
                )
                for e in events
            ]
            await _until(lambda: all(s.message.acked for s in sent))
    finally:
        app.consumer._thread.thread_loop.close()

    assert batches == [len(events)] and publisher.buffered == len(publisher.sent)
    # c-1's second event saw the state its first one left, inside the same batch.
    assert app.contact_to_state["c-1"]["funnels"]["lifecycle"]["current"] == "prospect"
    assert app.contact_to_state["c-2"]["funnels"]["lifecycle"]["current"] == "lead"


async def test_a_failed_publish_crashes_the_app_without_acking_the_event(tmp_path: Path) -> None:
    publisher = FakePublisher()
    publisher.fail_with = ConnectionError("broker unreachable")
    app = _app(tmp_path, publisher)
    event = contact_event("c-1", "track", "Signed Up")
    try:
        async with app.evaluate_contact_events.test_context() as agent:
            sent = await agent.put(event.model_dump_json().encode(), key=b"c-1")
            await _until(lambda: app.crash_reason is not None)
    finally:
        app.consumer._thread.thread_loop.close()
    # Not acked, so never committed: the restarted worker processes it again.
    assert not sent.message.acked
    assert isinstance(app.crash_reason, ConnectionError)
    assert app.contact_to_state.get("c-1") is None
