"""In-memory fakes for the notifier's dispatcher: a follow-up queue on a clock the test
moves, an outbox that counts its passes, and a channel that answers from a script."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from funnel_notifier.channels import Delivery, Outcome
from funnel_notifier.dispatcher import Attempted, Claimed, Finished
from funnel_notifier.domain.followups import CLAIMABLE, Status, Transition, moved_on

__all__ = ["FakeChannel", "FakeFollowUp", "FakeOutbox", "FakeQueue"]

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class FakeFollowUp:
    id: str
    rule_id: str = "welcome"
    due: float = 0.0  # Seconds on the queue's clock.
    status: Status = Status.SCHEDULED
    stage: str | None = "trial"
    unless_moved_on: bool = False
    current_stage: str | None = None  # The contact's latest stage, as the intake saw it.
    attempts: int = 0
    total_attempts: int = 0
    last_error: str | None = None
    history: list[Transition] = field(default_factory=list)


class FakeQueue:
    """A ``FollowUpQueue`` in memory: claims what is due on ``now``, applies the
    transitions it is given, and keeps every batch ``finish`` was handed."""

    def __init__(self) -> None:
        self.now = 0.0
        self.rows: dict[str, FakeFollowUp] = {}
        self.finished: list[list[Attempted]] = []
        self.fail_finish = False
        self.steal: set[str] = set()  # Follow-ups another dispatcher takes over meanwhile.

    def add(self, row: FakeFollowUp) -> FakeFollowUp:
        self.rows[row.id] = row
        return row

    def _apply(self, row: FakeFollowUp, transition: Transition) -> None:
        row.status = transition.to
        row.last_error = transition.error
        row.history.append(transition)

    async def claim(
        self, *, limit: int, lease_s: float, max_attempts: int
    ) -> tuple[list[Claimed], list[Transition]]:
        due = [r for r in self.rows.values() if r.status in CLAIMABLE and r.due <= self.now]
        claimed, settled = [], []
        for row in sorted(due, key=lambda r: r.due)[:limit]:
            cancelled = moved_on(
                unless_moved_on=row.unless_moved_on,
                stage=row.stage,
                current_stage=row.current_stage,
            )
            if cancelled is not None:
                self._apply(row, cancelled)
                settled.append(cancelled)
                continue
            row.status = Status.SENDING
            row.attempts += 1
            row.total_attempts += 1
            claimed.append(_claimed(row))
        return claimed, settled

    async def finish(self, attempted: list[Attempted]) -> list[Finished]:
        if self.fail_finish:
            raise ConnectionError("the database went away")
        self.finished.append(list(attempted))
        results = []
        for item in attempted:
            row = self.rows[item.claimed.delivery.followup_id]
            if row.id in self.steal:
                results.append(Finished(None))
                continue
            self._apply(row, item.transition)
            latency = None
            if item.transition.to is Status.SENT:
                latency = self.now - row.due
            if item.transition.to is Status.RETRYING:
                row.due = self.now + item.retry_in_s
            results.append(Finished(item.transition, latency_s=latency))
        return results

    async def next_due_in_s(self) -> float | None:
        dues = [r.due - self.now for r in self.rows.values() if r.status in CLAIMABLE]
        return min(dues, default=None)

    async def depth(self) -> int:
        return sum(r.status in CLAIMABLE and r.due <= self.now for r in self.rows.values())


def _claimed(row: FakeFollowUp) -> Claimed:
    return Claimed(
        delivery=Delivery(
            followup_id=row.id,
            rule_id=row.rule_id,
            trigger="entered",
            funnel="lifecycle",
            contact_id=f"contact-{row.id}",
            stage=row.stage,
            stage_change_id=f"change-{row.id}",
            record={"traits": {"email": f"{row.id}@example.com"}},
        ),
        channel="webhook",
        attempt=row.total_attempts,
        attempts_this_round=row.attempts,
        due_at=EPOCH + timedelta(seconds=row.due),
    )


class FakeOutbox:
    def __init__(self) -> None:
        self.passes = 0

    async def publish_pending(self) -> int:
        self.passes += 1
        return 0


class FakeChannel:
    """Answers each delivery with the next outcome of ``script``; the last one repeats."""

    def __init__(self, *script: Outcome) -> None:
        self.script = list(script) or [Outcome(ok=True)]
        self.deliveries: list[Delivery] = []
        self.delivered = asyncio.Event()

    async def deliver(self, delivery: Delivery, *, timeout_s: float) -> Outcome:
        self.deliveries.append(delivery)
        self.delivered.set()
        return self.script[min(len(self.deliveries), len(self.script)) - 1]
