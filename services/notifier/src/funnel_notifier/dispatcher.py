"""The dispatcher: take due follow-ups, deliver them, record what happened.

It works from a ``FollowUpQueue`` and an ``Outbox`` (``funnel_notifier.postgres``
has the real ones; the unit tests a fake), asks the domain what each attempt's
outcome makes of the follow-up, and counts the changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from funnel_notifier.channels import Channel, Delivery, Outcome
from funnel_notifier.domain import followups
from funnel_notifier.domain.backoff import next_delay_s
from funnel_notifier.domain.followups import Transition, attempt_outcome
from funnel_notifier.metrics import NotifierMetrics
from funnel_notifier.settings import NotifierSettings

__all__ = ["Attempted", "Claimed", "Dispatcher", "Finished", "FollowUpQueue", "Outbox"]

log = logging.getLogger("funnel.notifier.dispatcher")


@dataclass(frozen=True)
class Claimed:
    delivery: Delivery
    channel: str
    attempt: int  # This attempt's number over the follow-up's whole life.
    attempts_this_round: int  # Counted against the limit; reset by an operator's retry.
    due_at: datetime


@dataclass(frozen=True)
class Attempted:
    """A claimed follow-up after its attempt: what happened, what it makes of the
    follow-up, and when to try again."""

    claimed: Claimed
    outcome: Outcome
    transition: Transition
    retry_in_s: float


@dataclass(frozen=True)
class Finished:
    """An attempt as recorded: its transition, or None when it finished too late (its
    lease ran out and another dispatcher took the follow-up over)."""

    transition: Transition | None
    latency_s: float | None = None  # From due time to sent.


class FollowUpQueue(Protocol):
    """Where follow-ups wait for their due time; what the dispatcher calls."""

    async def claim(
        self, *, limit: int, lease_s: float, max_attempts: int
    ) -> tuple[list[Claimed], list[Transition]]:
        """Take due follow-ups under a lease; also the transitions of those settled on
        the way (cancelled, or dead after an abandoned last attempt)."""
        ...

    async def finish(self, attempted: list[Attempted]) -> list[Finished]:
        """Record attempts and their transitions together; results in the same order."""
        ...

    async def next_due_in_s(self) -> float | None:
        """Seconds until the earliest claimable follow-up is due; None: none waits."""
        ...

    async def depth(self) -> int:
        """Follow-ups due now and not yet taken."""
        ...


class Outbox(Protocol):
    async def publish_pending(self) -> int:
        """Publish the state changes not yet published; how many there were."""
        ...


class Dispatcher:
    def __init__(
        self,
        *,
        queue: FollowUpQueue,
        outbox: Outbox,
        channels: dict[str, Channel],
        settings: NotifierSettings,
        metrics: NotifierMetrics,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._queue = queue
        self._outbox = outbox
        self._channels = channels
        self._settings = settings
        self._metrics = metrics
        self._draw = draw
        self._stopping = asyncio.Event()
        self._nudge = asyncio.Event()  # Set when the outbox has new rows to publish.
        self._wake = asyncio.Event()  # Set when follow-ups were stored, or to stop.
        self._depth_due = 0.0
        # When an idle dispatcher will look next (loop time): -inf during a pass, whose
        # look-ahead sees what was stored meanwhile; +inf while looking ahead.
        self._alarm = -math.inf

    def request_stop(self) -> None:
        """Finish the attempts in flight, then return from ``run``: a clean shutdown
        leaves no attempt for another process to take over and send again."""
        self._stopping.set()
        self._wake.set()

    def wake(self, due_in_s: float = 0.0) -> None:
        """New follow-ups were stored, the earliest due in ``due_in_s``: publish their
        ``scheduled`` events, and look again if that is sooner than planned."""
        self._nudge.set()
        if asyncio.get_running_loop().time() + due_in_s < self._alarm:
            self._wake.set()

    async def run(self) -> None:
        """Poll until stopped. A database or broker outage pauses, never stops, the loop.

        The outbox is published by a loop of its own, so waiting for the broker's
        acks never holds up deliveries; it gets a last pass after the dispatcher stops."""
        relay = asyncio.create_task(self._relay(), name="outbox-relay")
        try:
            while not self._stopping.is_set():
                busy: bool | None  # None: the pass failed.
                try:
                    busy = await self.run_once()
                except Exception as exc:
                    log.warning(
                        "dispatcher pass failed (%s: %s); retrying", type(exc).__name__, exc
                    )
                    busy = None
                if not busy:
                    await self._idle(look_ahead=busy is not None)
        finally:
            self._nudge.set()
            await relay

    async def _idle(self, *, look_ahead: bool) -> None:
        """Sleep until the next follow-up is due, new ones are stored, or a poll interval
        passed (the fallback for rows other replicas store, retry or leave behind)."""
        wait_s = self._settings.poll_interval_s
        loop = asyncio.get_running_loop()
        self._alarm = math.inf
        if look_ahead:
            try:
                due_in_s = await self._queue.next_due_in_s()
            except Exception as exc:
                log.warning("looking ahead failed (%s: %s)", type(exc).__name__, exc)
                due_in_s = None
            if due_in_s is not None:  # <= 0: it fell due since this pass claimed.
                wait_s = min(wait_s, max(due_in_s, 0.0))
        self._alarm = loop.time() + wait_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), wait_s)

    async def _relay(self) -> None:
        """Publish pending outbox rows whenever state changed or a poll interval passed."""
        while True:
            stopping = self._stopping.is_set()
            try:
                published = await self._outbox.publish_pending()
            except Exception as exc:
                log.warning("outbox publish failed (%s: %s); retrying", type(exc).__name__, exc)
                published = 0
            if stopping:
                return
            if not published:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._nudge.wait(), self._settings.poll_interval_s)
                self._nudge.clear()

    async def run_once(self) -> bool:
        """One pass: claim, deliver, record outcomes as attempts finish. True when it
        found work."""
        settings = self._settings
        self._alarm = -math.inf
        self._wake.clear()  # The look-ahead after this pass sees what is stored meanwhile.
        claimed, settled = await self._queue.claim(
            limit=settings.batch_size,
            lease_s=settings.attempt_timeout_s + settings.claim_grace_s,
            max_attempts=settings.max_attempts,
        )
        for transition in settled:
            for change in transition.changes:
                self._metrics.followups.labels(change).inc()
        if settled:
            self._nudge.set()
        pending = {asyncio.create_task(self._attempt(item)) for item in claimed}
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                # Whatever finished meanwhile is recorded together, in one transaction.
                await self._record([task.result() for task in done])
        finally:
            for task in pending:  # Only when cancelled: their leases run out.
                task.cancel()
        await self._update_depth()
        return bool(claimed or settled)

    async def _update_depth(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() >= self._depth_due:  # A count over the table: once a second is plenty.
            self._depth_due = loop.time() + 1.0
            self._metrics.queue_depth.set(await self._queue.depth())

    async def _attempt(self, claimed: Claimed) -> Attempted:
        delivery = claimed.delivery
        channel = self._channels.get(delivery.rule_id)
        timeout_s = self._settings.attempt_timeout_s
        if channel is None:
            outcome = Outcome(
                ok=False, final=True, error=f"rule {delivery.rule_id} is not configured or disabled"
            )
        else:
            try:
                # The hard cap for every channel (SMTP times each phase, not the
                # whole exchange): the attempt must end well inside its lease.
                outcome = await asyncio.wait_for(
                    channel.deliver(delivery, timeout_s=timeout_s), timeout_s
                )
            except TimeoutError:
                outcome = Outcome(ok=False, error=f"no answer within {timeout_s:g}s")
            except Exception as exc:  # A channel's bug fails the attempt, never the batch.
                outcome = Outcome(ok=False, error=f"{type(exc).__name__}: {exc}")
        retry_in_s = outcome.retry_after_s
        if retry_in_s is None:
            retry_in_s = next_delay_s(
                attempt=claimed.attempts_this_round,
                base_s=self._settings.backoff_base_s,
                cap_s=self._settings.backoff_max_s,
                draw=self._draw(),
            )
        transition = followups.attempted(
            ok=outcome.ok,
            final=outcome.final,
            error=outcome.error,
            attempts_this_round=claimed.attempts_this_round,
            max_attempts=self._settings.max_attempts,
        )
        return Attempted(
            claimed=claimed, outcome=outcome, transition=transition, retry_in_s=retry_in_s
        )

    async def _record(self, attempted: list[Attempted]) -> None:
        try:
            results = await self._queue.finish(attempted)
        except Exception as exc:
            # Not recorded: the leases run out and the follow-ups are tried again,
            # under the same ids.
            log.warning("recording %d attempt(s) failed: %r", len(attempted), exc)
            return
        self._nudge.set()
        for item, finished in zip(attempted, results, strict=True):
            self._count(item, finished)

    def _count(self, item: Attempted, finished: Finished) -> None:
        claimed, outcome, transition = item.claimed, item.outcome, finished.transition
        self._metrics.attempts.labels(claimed.channel, attempt_outcome(outcome.ok)).inc()
        if transition is not None:
            for change in transition.changes:
                self._metrics.followups.labels(change).inc()
            if finished.latency_s is not None:
                self._metrics.latency.observe(max(finished.latency_s, 0.0))
        log.info(
            "follow-up %s (%s) attempt %s: %s%s",
            claimed.delivery.followup_id,
            claimed.delivery.rule_id,
            claimed.attempt,
            "stale" if transition is None else transition.to,
            f" ({outcome.error})" if outcome.error else "",
        )
