"""The agent acks a batch's records only once the broker acknowledged their states
(changelog records), and stops the worker when a state write fails (faust's test context)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka.errors import NotEnoughReplicasError
from funnel_shared.settings import KafkaSettings, TopicSettings
from funnel_stage_engine.domain.definitions import load_funnels
from funnel_stage_engine.settings import StageEngineSettings
from funnel_stage_engine.worker.app import StageEngineApp, create_app
from funnel_stage_engine.worker.durable_table import StateNotWritten

from tests.support.contact_events import contact_event
from tests.support.fake_publisher import FakePublisher


async def _until(done: Callable[[], bool]) -> None:
    for _ in range(500):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the agent did not get there")


def _app(tmp_path: Path) -> tuple[StageEngineApp, list[Any]]:
    """The app, and the changelog futures its table hands over (never sent: the test
    resolves them, as the broker would)."""
    app = create_app(
        settings=StageEngineSettings(
            app_id=f"unit-{uuid.uuid4().hex[:8]}", store="memory://", data_dir=tmp_path
        ),
        kafka=KafkaSettings(),
        topics=TopicSettings(),
        funnels=load_funnels(),
    )
    app.handler.publisher = FakePublisher()
    table: Any = app.contact_to_state
    send = table.send_changelog
    handed_over: list[Any] = []

    def keep(*args: Any, **kwargs: Any) -> Any:
        future = send(*args, **kwargs)
        handed_over.append(future)
        return future

    table.send_changelog = keep
    app.finalize()
    app.flow_control.resume()
    return app, handed_over


async def test_records_are_acked_only_once_their_states_are_acknowledged(tmp_path: Path) -> None:
    app, handed_over = _app(tmp_path)
    event = contact_event("c-1", "track", "Signed Up")
    try:
        async with app.evaluate_contact_events.test_context() as agent:
            sent = await agent.put(event.model_dump_json().encode(), key=b"c-1", wait=False)
            await _until(lambda: bool(handed_over))
            for _ in range(20):  # The agent gets every chance to ack too early.
                await asyncio.sleep(0)
            assert not sent.message.acked
            for future in handed_over:
                future.set_result(None)
            await _until(lambda: sent.message.acked)
    finally:
        app.consumer._thread.thread_loop.close()
    assert app.crash_reason is None


async def test_a_refused_state_write_stops_the_worker_without_acking(tmp_path: Path) -> None:
    app, handed_over = _app(tmp_path)
    event = contact_event("c-1", "track", "Signed Up")
    try:
        async with app.evaluate_contact_events.test_context() as agent:
            sent = await agent.put(event.model_dump_json().encode(), key=b"c-1", wait=False)
            await _until(lambda: bool(handed_over))
            for future in handed_over:
                future.set_exception(NotEnoughReplicasError())
            await _until(lambda: app.crash_reason is not None)
    finally:
        app.consumer._thread.thread_loop.close()
    assert isinstance(app.crash_reason, StateNotWritten)
    assert not sent.message.acked
