"""What a running stage-engine worker shows from outside: its metrics and its changelog."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.support.kafka_reader import Record, TopicReader
from tests.support.processes import StageEngineWorker, http_get


def samples(worker: StageEngineWorker, family_name: str) -> list[Sample]:
    status, body = http_get(worker.url + "/metrics")
    if status != 200:
        return []
    return [
        sample
        for family in text_string_to_metric_families(body)
        if family.name == family_name
        for sample in family.samples
    ]


def events_processed(worker: StageEngineWorker) -> float:
    found = samples(worker, "funnel_stage_engine_events_processed")
    return sum(sample.value for sample in found if sample.name.endswith("_total"))


def lag(worker: StageEngineWorker) -> dict[str, float]:
    found = samples(worker, "funnel_stage_engine_consumer_lag")
    return {sample.labels["partition"]: sample.value for sample in found}


async def wait_for(
    check: Callable[[], bool], *, what: str, worker: StageEngineWorker, timeout_s: float = 150
) -> None:
    """Poll ``check`` (run in a thread: it may do blocking HTTP) until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if await asyncio.to_thread(check):
            return
        if worker.process is not None and worker.process.poll() is not None:
            raise AssertionError(f"the worker exited waiting for {what}\n{worker.log_tail()}")
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{worker.log_tail()}")


def changelog_topic(app_id: str) -> str:
    """The contact-state table's changelog topic (faust: ``<app id>-<table>-changelog``)."""
    return f"{app_id}-contact_to_state-changelog"


def changelog_states(records: list[Record]) -> dict[str, dict[str, Any]]:
    """The latest state per contact in changelog records (faust's JSON key and value)."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.key is None or not record.value:
            continue
        latest[json.loads(record.key)] = json.loads(record.value)
    return latest


def read_changelog(bootstrap_servers: str, app_id: str) -> dict[str, dict[str, Any]]:
    reader = TopicReader(bootstrap_servers, changelog_topic(app_id))
    try:
        reader.read_to_end(timeout_s=60)
        return changelog_states(reader.records)
    finally:
        reader.close()
