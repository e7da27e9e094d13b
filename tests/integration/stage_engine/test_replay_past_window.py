"""Replay past the messageId window: 2,500 events of one contact, kill -9 before any
offset commit, restart, and compare the topic with the pure engine.

The contact orders once, then views pages (far more than the 200 messageIds a state
remembers). The worker processes everything and its states reach the changelog, but
no offset is committed; it is killed with SIGKILL. The restarted worker recovers the
newest state and reads all 2,500 records again: the order is no longer in the
state's messageId window, so only the remembered input positions keep it from
counting a second time (customer -> repeat_customer, which never happened).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from datetime import timedelta

import pytest
from funnel_shared.events import ContactEvent, StageBlocked, StageChanged
from funnel_shared.settings import KafkaSettings
from funnel_stage_engine.domain.engine import DEFAULT_DEDUPE_WINDOW

from tests.integration.conftest import StageEngineFactory
from tests.support.contact_events import START, contact_event, produce
from tests.support.kafka_reader import read_all
from tests.support.stage_engine_probe import events_processed, lag, read_changelog, wait_for
from tests.support.stage_engine_runs import logical, outputs_adapter, pure_engine

pytestmark = pytest.mark.integration

EVENTS = 2500


def _events(contact: str) -> list[ContactEvent]:
    order = contact_event(contact, "track", "Order Completed", properties={"total": 30})
    events = [order]
    for i in range(1, EVENTS):
        at = START + timedelta(minutes=i)
        if i == 50:  # A client re-sending the order soon after: the window's job.
            events.append(order)
            continue
        events.append(contact_event(contact, "page", name=f"Page {i % 7}", at=at))
    return events


@pytest.mark.parametrize("store", ["rocksdb://", "memory://"])
async def test_a_contact_replayed_past_the_message_window_yields_only_what_the_engine_would(
    store: str,
    stage_engine_worker: StageEngineFactory,
    kafka_settings: KafkaSettings,
    topic_env: dict[str, str],
) -> None:
    contact = f"replay-{uuid.uuid4().hex[:8]}"
    events = _events(contact)
    expected, _ = pure_engine(events)
    assert ("stage_changed", "lifecycle", contact, events[0].message_id, "customer") in expected
    await produce(kafka_settings, topic_env["TOPIC_CONTACT_EVENTS"], events)
    # No commit while the test runs the first worker: it is killed before any.
    worker = stage_engine_worker(STAGE_ENGINE_STORE=store, STAGE_ENGINE_COMMIT_INTERVAL_S="3600")
    app_id = worker.env["STAGE_ENGINE_APP_ID"]
    worker.start()
    await wait_for(
        lambda: events_processed(worker) >= EVENTS, what="every event processed", worker=worker
    )

    def newest_state_in_changelog() -> bool:
        state = read_changelog(kafka_settings.bootstrap_servers, app_id).get(contact)
        return bool(state) and max(state.get("positions", {0: 0}).values()) == EVENTS - 1

    await wait_for(newest_state_in_changelog, what="the newest state durable", worker=worker)
    assert sum(lag(worker).values()) == EVENTS, "an offset was committed before the kill"
    state = read_changelog(kafka_settings.bootstrap_servers, app_id)[contact]
    assert events[0].message_id not in state["seen_message_ids"]
    assert len(state["seen_message_ids"]) == DEFAULT_DEDUPE_WINDOW
    worker.kill()

    worker.env["STAGE_ENGINE_COMMIT_INTERVAL_S"] = "0.5"
    worker.start()
    await wait_for(
        lambda: events_processed(worker) >= EVENTS, what="the replay processed", worker=worker
    )
    await wait_for(
        lambda: bool(lag(worker)) and not any(lag(worker).values()),
        what="the replay committed",
        worker=worker,
    )
    records = await asyncio.to_thread(
        read_all, kafka_settings.bootstrap_servers, topic_env["TOPIC_STAGE_CHANGED"]
    )
    outputs = [outputs_adapter.validate_json(r.value) for r in records]
    ids: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for output in outputs:
        assert isinstance(output, StageChanged | StageBlocked), output
        ids[logical(output)].add(output.id)
    unexpected = set(ids) - set(expected)
    assert not unexpected, f"outputs the engine would not produce: {sorted(unexpected)}"
    assert set(ids) == set(expected)
    assert all(found == {expected[key]} for key, found in ids.items())
