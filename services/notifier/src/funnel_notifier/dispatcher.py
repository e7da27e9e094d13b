"""The dispatcher: take due follow-ups, deliver them, record what happened."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

from funnel_notifier.backoff import next_delay_s
from funnel_notifier.channels import Channel, Outcome
from funnel_notifier.metrics import NotifierMetrics
from funnel_notifier.outbox import OutboxRelay
from funnel_notifier.queue import Claimed, FollowUpQueue
from funnel_notifier.settings import NotifierSettings

__all__ = ["Dispatcher"]

log = logging.getLogger("funnel.notifier.dispatcher")


class Dispatcher:
    def __init__(
        self,
        *,
        queue: FollowUpQueue,
        outbox: OutboxRelay,
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

    def request_stop(self) -> None:
        """Finish the attempts in flight, then return from ``run``: a clean shutdown
        leaves no attempt for another process to take over and send again."""
        self._stopping.set()

    async def run(self) -> None:
        """Poll until stopped. A database or broker outage pauses, never stops, the loop."""
        while not self._stopping.is_set():
            try:
                busy = await self.run_once()
            except Exception as exc:
                log.warning("dispatcher pass failed (%s: %s); retrying", type(exc).__name__, exc)
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._settings.poll_interval_s)

    async def run_once(self) -> bool:
        """One pass: claim, deliver, publish events. True when it found work."""
        settings = self._settings
        claimed, settled = await self._queue.claim(
            limit=settings.batch_size,
            lease_s=settings.attempt_timeout_s + settings.claim_grace_s,
            max_attempts=settings.max_attempts,
        )
        for status in settled:
            self._metrics.followups.labels(status).inc()
        results = await asyncio.gather(
            *(self._deliver(item) for item in claimed), return_exceptions=True
        )
        for item, result in zip(claimed, results, strict=True):
            if isinstance(result, Exception):
                # Not recorded: the lease runs out and the follow-up is tried again.
                log.warning("follow-up %s: %r", item.delivery.followup_id, result)
        published = await self._outbox.publish_pending()
        self._metrics.queue_depth.set(await self._queue.depth())
        return bool(claimed or settled or published)

    async def _deliver(self, claimed: Claimed) -> None:
        delivery = claimed.delivery
        channel = self._channels.get(delivery.rule_id)
        timeout_s = self._settings.attempt_timeout_s
        if channel is None:
            outcome = Outcome(
                ok=False, final=True, error=f"rule {delivery.rule_id} is not configured or disabled"
            )
        else:
            try:
                # The hard cap: httpx times each phase, not the whole request, and
                # the attempt must end well inside its lease.
                outcome = await asyncio.wait_for(
                    channel.deliver(delivery, timeout_s=timeout_s), timeout_s
                )
            except TimeoutError:
                outcome = Outcome(ok=False, error=f"no answer within {timeout_s:g}s")
        retry_in_s = outcome.retry_after_s
        if retry_in_s is None:
            retry_in_s = next_delay_s(
                attempt=claimed.attempts_this_round,
                base_s=self._settings.backoff_base_s,
                cap_s=self._settings.backoff_max_s,
                draw=self._draw(),
            )
        finished = await self._queue.finish(
            claimed, outcome, max_attempts=self._settings.max_attempts, retry_in_s=retry_in_s
        )
        result = "succeeded" if outcome.ok else "failed"
        self._metrics.attempts.labels(claimed.channel, result).inc()
        if finished.status == "sent":
            self._metrics.followups.labels("sent").inc()
            if finished.latency_s is not None:
                self._metrics.latency.observe(max(finished.latency_s, 0.0))
        elif finished.status in ("retrying", "dead"):
            self._metrics.followups.labels("failed").inc()
            if finished.status == "dead":
                self._metrics.followups.labels("dead").inc()
        log.info(
            "follow-up %s (%s) attempt %s: %s%s",
            delivery.followup_id,
            delivery.rule_id,
            claimed.attempt,
            finished.status,
            f" ({outcome.error})" if outcome.error else "",
        )
