"""The stage-engine worker as a real process against a real broker."""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from funnel_shared.events import (
    RejectedRecord,
    StageBlocked,
    StageChanged,
    stage_blocked_id,
    stage_change_id,
)
from funnel_shared.settings import KafkaSettings
from funnel_stage_engine.domain.definitions import load_funnels
from prometheus_client.parser import text_string_to_metric_families
from pydantic import TypeAdapter

from tests.integration.conftest import StageEngineFactory
from tests.support.contact_events import START, contact_event, produce
from tests.support.kafka_reader import read_records

pytestmark = pytest.mark.integration

# The test's own funnels: the integration test must not depend on tweaks to the built-ins.
JOURNEY_FUNNEL = """
name: journey
ordering: forward
stages: [visitor, lead, prospect, customer, repeat_customer, advocate]
rules:
  - {id: referral-sent, to: advocate, from: [customer, repeat_customer],
     match: {event: Referral Sent}}
  - {id: second-order, to: repeat_customer, from: customer, match: {event: Order Completed}}
  - {id: first-order, to: customer, match: {event: Order Completed}}
  - {id: demo, to: prospect, match: {event: Demo Requested}}
  - {id: signed-up, to: lead, match: {event: Signed Up}}
  - {id: visit, to: visitor, match: {type: [page, track]}}
"""
STEPS_FUNNEL = """
name: steps
ordering: strict
stages: [signed_up, demoed, ordered]
rules:
  - {id: sign-up, to: signed_up, match: {event: Signed Up}}
  - {id: demo, to: demoed, match: {event: Demo Requested}}
  - {id: order, to: ordered, match: {event: Order Completed}}
"""

outputs_adapter: TypeAdapter[StageChanged | StageBlocked] = TypeAdapter(StageChanged | StageBlocked)


def _funnels_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "funnels"
    directory.mkdir()
    (directory / "journey.yaml").write_text(JOURNEY_FUNNEL)
    (directory / "steps.yaml").write_text(STEPS_FUNNEL)
    return directory


async def _read_outputs(
    kafka_settings: KafkaSettings, topic: str, expected: int
) -> list[StageChanged | StageBlocked]:
    records = await asyncio.to_thread(
        read_records, kafka_settings.bootstrap_servers, topic, expected=expected, timeout_s=90
    )
    return [outputs_adapter.validate_json(record.value) for record in records]


async def test_a_scripted_journey_produces_exactly_the_expected_stage_changes_in_order(
    stage_engine_worker: StageEngineFactory,
    kafka_settings: KafkaSettings,
    topic_env: dict[str, str],
    tmp_path: Path,
) -> None:
    funnels_dir = _funnels_dir(tmp_path)
    versions = {funnel.name: funnel.version for funnel in load_funnels(funnels_dir)}
    contact = f"user-{uuid.uuid4().hex}"
    steps = [
        ("page", None, {"name": "Home"}),
        ("track", "Signed Up", {"context": {"traits": {"email": "zoe@example.com"}}}),
        ("track", "Order Completed", {}),  # The strict funnel refuses to skip the demo.
        ("track", "Demo Requested", {}),
        ("track", "Order Completed", {}),
        ("track", "Referral Sent", {}),
    ]
    journey = [
        contact_event(contact, kind, name, at=START + timedelta(hours=i), **fields)
        for i, (kind, name, fields) in enumerate(steps)
    ]
    worker = stage_engine_worker(STAGE_ENGINE_FUNNELS_DIR=str(funnels_dir))
    worker.start()
    await asyncio.to_thread(worker.wait_ready)
    await produce(kafka_settings, topic_env["TOPIC_CONTACT_EVENTS"], journey)

    # (event index, funnel, from, to, rule) in order; a blocked skip has kind "blocked".
    expected = [
        (0, "journey", None, "visitor", "visit"),
        (1, "journey", "visitor", "lead", "signed-up"),
        (1, "steps", None, "signed_up", "sign-up"),
        (2, "journey", "lead", "customer", "first-order"),
        (2, "steps", "signed_up", "blocked:ordered", "order"),
        (3, "steps", "signed_up", "demoed", "demo"),
        (4, "journey", "customer", "repeat_customer", "second-order"),
        (4, "steps", "demoed", "ordered", "order"),
        (5, "journey", "repeat_customer", "advocate", "referral-sent"),
    ]
    outputs = await _read_outputs(kafka_settings, topic_env["TOPIC_STAGE_CHANGED"], len(expected))
    # One contact, one partition: outputs arrive in processing order, so an extra
    # record would have shown up before the last expected one.
    assert [_summary(output, journey) for output in outputs] == expected, worker.log_tail()
    for output, (index, funnel, _, to, _) in zip(outputs, expected, strict=True):
        cause = journey[index]
        assert (output.contact_id, output.cause_message_id) == (contact, cause.message_id)
        assert (output.event_time, output.funnel_version) == (cause.timestamp, versions[funnel])
        if isinstance(output, StageChanged):
            assert output.id == stage_change_id(
                funnel=funnel, contact_id=contact, message_id=cause.message_id, to_stage=to
            )
            assert output.traits == ({} if index == 0 else {"email": "zoe@example.com"})
        else:
            assert output.id == stage_blocked_id(
                funnel=funnel,
                contact_id=contact,
                message_id=cause.message_id,
                attempted_stage=output.attempted_stage,
            )
    last = outputs[-1]
    assert isinstance(last, StageChanged) and last.furthest_stage == "advocate"
    await asyncio.to_thread(_assert_metrics, worker.url + "/metrics")


def _scrape(url: str) -> tuple[set[str], dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=1.0.0")
        families = list(text_string_to_metric_families(response.read().decode()))
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }
    return {family.name for family in families}, values


def _assert_metrics(url: str) -> None:
    processed = "funnel_stage_engine_events_processed_total"
    # The counters move right after the acks that made the records visible: allow a moment.
    deadline = time.monotonic() + 10
    families, values = _scrape(url)
    while values.get((processed, (("outcome", "changed"),))) != 6 and time.monotonic() < deadline:
        time.sleep(0.1)
        families, values = _scrape(url)
    changes = "funnel_stage_engine_stage_changes_total"
    assert values[(changes, (("funnel", "journey"), ("to_stage", "advocate")))] == 1
    assert values[(changes, (("funnel", "steps"), ("to_stage", "demoed")))] == 1
    blocked = "funnel_stage_engine_stage_blocked_total"
    assert values[(blocked, (("attempted_stage", "ordered"), ("funnel", "steps")))] == 1
    assert values[(processed, (("outcome", "changed"),))] == 6
    assert "funnel_stage_engine_consumer_lag" in families


def _summary(
    output: StageChanged | StageBlocked, journey: list[object]
) -> tuple[int, str, str | None, str, str]:
    index = [getattr(event, "message_id", None) for event in journey].index(output.cause_message_id)
    if isinstance(output, StageBlocked):
        return (
            index,
            output.funnel,
            output.current_stage,
            f"blocked:{output.attempted_stage}",
            output.rule_id,
        )
    return (index, output.funnel, output.from_stage, output.to_stage, output.rule_id)


async def test_an_event_that_fails_evaluation_is_rejected_and_the_partition_keeps_moving(
    stage_engine_worker: StageEngineFactory,
    kafka_settings: KafkaSettings,
    topic_env: dict[str, str],
    tmp_path: Path,
) -> None:
    contact = f"user-{uuid.uuid4().hex}"
    # A well-formed ContactEvent whose only id is a blocked value: evaluating it raises
    # (it has no contact). Ingest never writes one, but another producer could.
    poison = contact_event("anonymous", "track", "Signed Up")
    poison_bytes = poison.model_dump_json().encode()
    after = contact_event(contact, "track", "Signed Up", at=START + timedelta(minutes=1))
    worker = stage_engine_worker(STAGE_ENGINE_FUNNELS_DIR=str(_funnels_dir(tmp_path)))
    worker.start()
    await asyncio.to_thread(worker.wait_ready)
    # Same key, so the same partition: the good event waits behind the poison.
    await produce(
        kafka_settings, topic_env["TOPIC_CONTACT_EVENTS"], [(contact, poison_bytes), after]
    )

    outputs = await _read_outputs(kafka_settings, topic_env["TOPIC_STAGE_CHANGED"], 2)
    assert {(o.cause_message_id, o.funnel) for o in outputs} == {
        (after.message_id, "journey"),
        (after.message_id, "steps"),
    }, worker.log_tail()
    [dead] = await asyncio.to_thread(
        read_records, kafka_settings.bootstrap_servers, topic_env["TOPIC_REJECTED"], expected=1
    )
    rejected = RejectedRecord.model_validate_json(dead.value)
    assert (rejected.service, rejected.origin, rejected.key) == (
        "stage-engine",
        topic_env["TOPIC_CONTACT_EVENTS"],
        contact,
    )
    assert rejected.original == poison_bytes.decode()
    assert "neither userId nor anonymousId" in rejected.errors[0]


def test_a_bad_funnel_directory_stops_the_worker_at_start_with_the_errors(
    stage_engine_worker: StageEngineFactory, tmp_path: Path
) -> None:
    funnels_dir = tmp_path / "bad-funnels"
    funnels_dir.mkdir()
    (funnels_dir / "broken.yaml").write_text("name: broken\nstages: []\nrules: nope\n")
    worker = stage_engine_worker(STAGE_ENGINE_FUNNELS_DIR=str(funnels_dir))
    worker.start()
    assert worker.process is not None
    try:
        code = worker.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker kept running\n{worker.log_tail()}")
    assert code == 78
    log = worker.log_path.read_text()
    assert "invalid funnel definitions" in log
    assert "broken.yaml" in log and "rules" in log
