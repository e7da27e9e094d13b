"""The dispatcher over an in-memory queue: what it claims, what it makes of each attempt,
when it retries, gives up, cancels, and wakes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from funnel_notifier.channels import Delivery, Outcome
from funnel_notifier.dispatcher import Dispatcher
from funnel_notifier.domain.backoff import next_delay_s
from funnel_notifier.domain.followups import Change, Status
from funnel_notifier.metrics import NotifierMetrics
from funnel_notifier.settings import NotifierSettings

from tests.support.notifier_fakes import FakeChannel, FakeFollowUp, FakeOutbox, FakeQueue

DRAW = 0.5
SETTINGS: dict[str, Any] = {
    "batch_size": 10,
    "attempt_timeout_s": 1.0,
    "backoff_base_s": 4.0,
    "backoff_max_s": 60.0,
    "max_attempts": 3,
    "poll_interval_s": 30.0,  # Long: a test that finishes fast was woken, not polled.
}


def make(
    queue: FakeQueue, channels: dict[str, Any], **overrides: Any
) -> tuple[Dispatcher, NotifierMetrics, FakeOutbox]:
    metrics = NotifierMetrics()
    outbox = FakeOutbox()
    dispatcher = Dispatcher(
        queue=queue,
        outbox=outbox,
        channels=channels,
        settings=NotifierSettings(**{**SETTINGS, **overrides}),
        metrics=metrics,
        draw=lambda: DRAW,
    )
    return dispatcher, metrics, outbox


def changes(metrics: NotifierMetrics, change: Change) -> float:
    value = metrics.registry.get_sample_value(
        "funnel_notifier_followups_total", {"status": change.value}
    )
    assert value is not None
    return value


def attempts(metrics: NotifierMetrics, result: str) -> float:
    labels = {"channel": "webhook", "result": result}
    return metrics.registry.get_sample_value("funnel_notifier_attempts_total", labels) or 0.0


async def test_a_pass_delivers_what_is_due_and_leaves_the_rest() -> None:
    queue = FakeQueue()
    queue.now = 100.0
    due = queue.add(FakeFollowUp("due", due=90.0))
    later = queue.add(FakeFollowUp("later", due=160.0))
    channel = FakeChannel(Outcome(ok=True))
    dispatcher, metrics, _ = make(queue, {"welcome": channel})

    assert await dispatcher.run_once() is True

    assert [d.followup_id for d in channel.deliveries] == ["due"]
    assert due.status is Status.SENT and later.status is Status.SCHEDULED
    assert changes(metrics, Change.SENT) == 1
    assert attempts(metrics, "succeeded") == 1
    latency = metrics.registry.get_sample_value("funnel_notifier_delivery_latency_seconds_sum", {})
    assert latency == 10.0
    assert await dispatcher.run_once() is False  # Nothing else is due.


async def test_a_failed_attempt_is_retried_after_the_backoff() -> None:
    queue = FakeQueue()
    row = queue.add(FakeFollowUp("f1"))
    channel = FakeChannel(Outcome(ok=False, error="HTTP 503", status_code=503))
    dispatcher, metrics, _ = make(queue, {"welcome": channel})

    await dispatcher.run_once()

    [[item]] = queue.finished
    assert item.retry_in_s == next_delay_s(attempt=1, base_s=4.0, cap_s=60.0, draw=DRAW)
    assert row.status is Status.RETRYING
    assert row.last_error == "HTTP 503"
    assert row.due == item.retry_in_s
    assert changes(metrics, Change.FAILED) == 1
    assert changes(metrics, Change.DEAD) == 0
    assert attempts(metrics, "failed") == 1


async def test_the_backoff_doubles_with_each_failed_attempt() -> None:
    queue = FakeQueue()
    queue.add(FakeFollowUp("f1"))
    dispatcher, _, _ = make(queue, {"welcome": FakeChannel(Outcome(ok=False, error="down"))})

    for _ in range(2):
        await dispatcher.run_once()
        queue.now = queue.rows["f1"].due

    delays = [batch[0].retry_in_s for batch in queue.finished]
    assert delays == [3.0, 6.0]  # Windows of 4 s and 8 s, half of each kept as a floor.


async def test_retry_after_from_the_receiver_replaces_the_backoff() -> None:
    queue = FakeQueue()
    queue.add(FakeFollowUp("f1"))
    outcome = Outcome(ok=False, error="HTTP 429", status_code=429, retry_after_s=42.0)
    dispatcher, _, _ = make(queue, {"welcome": FakeChannel(outcome)})

    await dispatcher.run_once()

    assert queue.finished[0][0].retry_in_s == 42.0
    assert queue.rows["f1"].due == 42.0


async def test_a_followup_is_dead_after_the_attempt_limit() -> None:
    queue = FakeQueue()
    row = queue.add(FakeFollowUp("f1"))
    channel = FakeChannel(Outcome(ok=False, error="HTTP 500"))
    dispatcher, metrics, _ = make(queue, {"welcome": channel}, max_attempts=3)

    for _ in range(5):
        await dispatcher.run_once()
        queue.now = row.due

    assert len(channel.deliveries) == 3
    assert row.status is Status.DEAD
    assert [t.to for t in row.history] == [Status.RETRYING, Status.RETRYING, Status.DEAD]
    assert changes(metrics, Change.FAILED) == 3
    assert changes(metrics, Change.DEAD) == 1


async def test_a_final_failure_is_dead_after_one_attempt() -> None:
    queue = FakeQueue()
    row = queue.add(FakeFollowUp("f1"))
    channel = FakeChannel(Outcome(ok=False, final=True, error="HTTP 410", status_code=410))
    dispatcher, metrics, _ = make(queue, {"welcome": channel})

    await dispatcher.run_once()

    assert row.status is Status.DEAD
    assert changes(metrics, Change.DEAD) == 1


async def test_a_followup_without_a_channel_fails_for_good() -> None:
    queue = FakeQueue()
    row = queue.add(FakeFollowUp("f1", rule_id="disabled"))
    dispatcher, _, _ = make(queue, {})

    await dispatcher.run_once()

    assert row.status is Status.DEAD
    assert row.last_error == "rule disabled is not configured or disabled"


async def test_a_channel_that_hangs_or_breaks_fails_only_its_own_attempt() -> None:
    class Hangs:
        async def deliver(self, delivery: Delivery, *, timeout_s: float) -> Outcome:
            await asyncio.sleep(60)
            raise AssertionError("not reached")

    class Breaks:
        async def deliver(self, delivery: Delivery, *, timeout_s: float) -> Outcome:
            raise KeyError("traits")

    queue = FakeQueue()
    hung = queue.add(FakeFollowUp("hung", rule_id="hangs"))
    broken = queue.add(FakeFollowUp("broken", rule_id="breaks"))
    sent = queue.add(FakeFollowUp("sent", rule_id="works"))
    channels = {"hangs": Hangs(), "breaks": Breaks(), "works": FakeChannel()}
    dispatcher, _, _ = make(queue, channels, attempt_timeout_s=0.05)

    await dispatcher.run_once()

    assert hung.status is Status.RETRYING and hung.last_error == "no answer within 0.05s"
    assert broken.status is Status.RETRYING and broken.last_error == "KeyError: 'traits'"
    assert sent.status is Status.SENT


async def test_a_followup_is_cancelled_when_the_contact_moved_on() -> None:
    queue = FakeQueue()
    row = queue.add(FakeFollowUp("f1", unless_moved_on=True, current_stage="paid"))
    channel = FakeChannel()
    dispatcher, metrics, _ = make(queue, {"welcome": channel})

    assert await dispatcher.run_once() is True

    assert channel.deliveries == []
    assert row.status is Status.CANCELLED
    assert row.last_error == "the contact moved on to paid"
    assert changes(metrics, Change.CANCELLED) == 1


async def test_an_attempt_taken_over_meanwhile_counts_the_attempt_but_no_change() -> None:
    queue = FakeQueue()
    queue.add(FakeFollowUp("f1"))
    queue.steal.add("f1")
    dispatcher, metrics, _ = make(queue, {"welcome": FakeChannel()})

    await dispatcher.run_once()

    assert attempts(metrics, "succeeded") == 1
    assert changes(metrics, Change.SENT) == 0


async def test_a_recording_failure_neither_counts_nor_stops_the_pass() -> None:
    queue = FakeQueue()
    queue.add(FakeFollowUp("f1"))
    queue.fail_finish = True
    dispatcher, metrics, _ = make(queue, {"welcome": FakeChannel()})

    assert await dispatcher.run_once() is True

    assert attempts(metrics, "succeeded") == 0
    assert changes(metrics, Change.SENT) == 0


async def test_new_followups_wake_an_idle_dispatcher_and_the_outbox() -> None:
    queue = FakeQueue()
    channel = FakeChannel()
    dispatcher, _, outbox = make(queue, {"welcome": channel})
    running = asyncio.create_task(dispatcher.run())
    try:
        await asyncio.sleep(0.05)  # Idle now, until the 30 s poll.
        passes = outbox.passes
        queue.add(FakeFollowUp("f1"))
        dispatcher.wake(0.0)
        await asyncio.wait_for(channel.delivered.wait(), 2.0)
        await asyncio.sleep(0.05)
        assert queue.rows["f1"].status is Status.SENT
        assert outbox.passes > passes  # Told to publish the new state changes.
    finally:
        dispatcher.request_stop()
        await asyncio.wait_for(running, 2.0)


async def test_a_followup_due_after_the_next_look_does_not_wake_the_dispatcher() -> None:
    queue = FakeQueue()
    queue.add(FakeFollowUp("f1", due=10.0))  # It looks again in 10 s, at the latest.
    channel = FakeChannel()
    dispatcher, _, _ = make(queue, {"welcome": channel})
    running = asyncio.create_task(dispatcher.run())
    try:
        await asyncio.sleep(0.05)
        queue.now = 100.0  # Due now on the queue's clock; the dispatcher was not told.
        dispatcher.wake(60.0)
        await asyncio.sleep(0.2)
        assert channel.deliveries == []
        dispatcher.wake(0.0)
        await asyncio.wait_for(channel.delivered.wait(), 2.0)
    finally:
        dispatcher.request_stop()
        await asyncio.wait_for(running, 2.0)


@pytest.mark.parametrize("busy", [True, False])
async def test_stopping_ends_the_run_loop(busy: bool) -> None:
    queue = FakeQueue()
    if busy:
        queue.add(FakeFollowUp("f1"))
    dispatcher, _, outbox = make(queue, {"welcome": FakeChannel()})
    running = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0.05)
    dispatcher.request_stop()
    await asyncio.wait_for(running, 2.0)
    assert outbox.passes >= 1
