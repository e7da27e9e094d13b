"""A worker whose agent makes no progress while records wait says so: the reason that
``/healthz`` answers with 503, and ``funnel_stage_engine_agent_stalled``."""

from __future__ import annotations

import uuid
from pathlib import Path

from funnel_shared.settings import KafkaSettings, TopicSettings
from funnel_stage_engine.domain.definitions import load_funnels
from funnel_stage_engine.settings import StageEngineSettings
from funnel_stage_engine.worker.app import agent_problem, create_app


def _gauge(app: object, name: str) -> float | None:
    value: float | None = app.metrics.registry.get_sample_value(name)  # type: ignore[attr-defined]
    return value


async def test_records_held_without_progress_beyond_the_bound_make_the_worker_unhealthy(
    tmp_path: Path,
) -> None:
    settings = StageEngineSettings(
        app_id=f"unit-{uuid.uuid4().hex[:8]}",
        store="memory://",
        data_dir=tmp_path,
        agent_stall_after_s=30,
    )
    app = create_app(
        settings=settings, kafka=KafkaSettings(), topics=TopicSettings(), funnels=load_funnels()
    )
    try:
        assert agent_problem(app, settings) == ""
        assert _gauge(app, "funnel_stage_engine_agent_stalled") == 0.0

        app.held.add(object())  # A record taken by the agent, and then nothing for 31 s.
        app.held.last_progress -= 31

        assert agent_problem(app, settings).startswith("agent stalled: records have waited 31s")
        assert _gauge(app, "funnel_stage_engine_agent_stalled") == 1.0
        waited = _gauge(app, "funnel_stage_engine_agent_waiting_seconds")
        assert waited is not None and waited >= 31
    finally:
        # Scraping builds faust's consumer (the lag gauge), whose thread owns an event
        # loop that only running the thread would close (as in test_agent.py).
        app.consumer._thread.thread_loop.close()
