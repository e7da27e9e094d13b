"""The faust agent, in faust's test context: memory store, one fake per outbound dependency."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from funnel_shared.events import RejectedRecord
from funnel_shared.settings import KafkaSettings, TopicSettings
from funnel_stage_engine.app import create_app
from funnel_stage_engine.definitions import load_funnels
from funnel_stage_engine.engine import evaluate
from funnel_stage_engine.settings import StageEngineSettings

from tests.contact_events import contact_event


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []

    async def publish(
        self, topic: str, *, key: str, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        self.sent.append((topic, key, value))


async def test_an_event_that_trips_evaluation_is_dead_lettered_and_the_next_one_is_handled(
    tmp_path: Path,
) -> None:
    poison = contact_event("c-1", "track", "Signed Up")
    after = contact_event("c-1", "track", "Demo Requested")

    def trips_on_poison(state: Any, event: Any, **kwargs: Any) -> Any:
        if event.message_id == poison.message_id:
            raise RuntimeError("rule evaluation failed")
        return evaluate(state, event, **kwargs)

    topics = TopicSettings()
    app = create_app(
        settings=StageEngineSettings(
            app_id=f"unit-{uuid.uuid4().hex[:8]}", store="memory://", data_dir=tmp_path
        ),
        kafka=KafkaSettings(),
        topics=topics,
        funnels=load_funnels(),
        evaluate=trips_on_poison,
    )
    publisher = RecordingPublisher()
    app.handler.publisher = publisher
    app.finalize()
    app.flow_control.resume()

    try:
        async with app.evaluate_contact_events.test_context() as agent:
            await agent.put(poison.model_dump_json().encode(), key=b"c-1")
            await agent.put(after.model_dump_json().encode(), key=b"c-1")
    finally:
        # Acking builds faust's consumer, whose thread owns an event loop that is
        # closed only by running the thread, which a test context never does.
        app.consumer._thread.thread_loop.close()

    [dead] = [value for topic, _, value in publisher.sent if topic == topics.rejected]
    assert RejectedRecord.model_validate_json(dead).errors == [
        "RuntimeError: rule evaluation failed"
    ]
    changes = [value for topic, _, value in publisher.sent if topic == topics.stage_changed]
    assert changes and all(after.message_id.encode() in value for value in changes)
    assert app.contact_to_state["c-1"]["funnels"]["lifecycle"]["current"] == "prospect"
