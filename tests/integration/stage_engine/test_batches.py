"""A batch through the worker's own handler and faust producer, against the real broker."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from faust.exceptions import ProducerSendError
from funnel_shared.events import ContactEvent, StageChanged
from funnel_shared.settings import KafkaSettings, TopicSettings
from funnel_stage_engine.domain.definitions import load_funnels
from funnel_stage_engine.domain.engine import ContactState, Evaluation, evaluate
from funnel_stage_engine.settings import StageEngineSettings
from funnel_stage_engine.worker.app import StageEngineApp, create_app
from funnel_stage_engine.worker.batch import Inbound

from tests.support.contact_events import contact_event
from tests.support.kafka_reader import read_records
from tests.support.stage_engine_handler import DictStates

pytestmark = pytest.mark.integration


def _oversized(poison: ContactEvent) -> Any:
    """The real engine, but the poison event's stage change carries 2 MB of traits: more
    than the producer may send, so its publish fails (not the event's evaluation)."""

    def evaluating(state: ContactState, event: ContactEvent, **kwargs: Any) -> Evaluation:
        result = evaluate(state, event, **kwargs)
        if event.message_id == poison.message_id:
            for output in result.outputs:
                if isinstance(output, StageChanged):
                    output.traits["blob"] = "x" * 2_000_000
        return result

    return evaluating


async def _started_app(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path, evaluate: Any
) -> StageEngineApp:
    app = create_app(
        settings=StageEngineSettings(
            app_id=f"batch-{uuid.uuid4().hex[:8]}", store="memory://", data_dir=tmp_path
        ),
        kafka=kafka,
        topics=topics,
        funnels=load_funnels(),
        evaluate=evaluate,
    )
    await asyncio.wait_for(app.producer.start(), 60)
    return app


async def test_a_batch_whose_publish_fails_stores_no_state_though_part_of_it_was_published(
    kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    first = contact_event(f"b-{uuid.uuid4().hex[:6]}", "track", "Signed Up")
    poison = contact_event(f"b-{uuid.uuid4().hex[:6]}", "track", "Signed Up")
    app = await _started_app(kafka_settings, topics, tmp_path, _oversized(poison))
    states = DictStates()
    app.handler.states = states
    # The handler dead-letters a record over its own size limit before publishing; set that
    # limit above the producer's, so the publish itself fails after another output was acked
    # (any send failure: the broker refusing a size, a timeout, an outage).
    app.handler.max_record_bytes = 10_000_000
    records = [
        Inbound(key=e.contact_key.encode(), value=e.model_dump_json().encode())
        for e in (first, poison)
    ]
    try:
        with pytest.raises(ProducerSendError, match="MessageSizeTooLarge"):
            await app.handler.handle_batch(records)
    finally:
        await asyncio.wait_for(app.producer.stop(), 60)

    # The first event's outputs reached the broker, yet no state of the batch was stored:
    # a restart replays both events from the old state, with the same ids.
    published = await asyncio.to_thread(
        read_records, kafka_settings.bootstrap_servers, topics.stage_changed, expected=1
    )
    causes = {StageChanged.model_validate_json(r.value).cause_message_id for r in published}
    assert causes == {first.message_id}
    assert states.data == {}
