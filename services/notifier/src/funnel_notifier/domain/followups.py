"""A follow-up's life: its statuses, the changes it publishes, and the transitions.

::

    scheduled --due, claimed--> sending --attempt succeeded--> sent
                                   |--attempt failed--> retrying --due, claimed--> sending
                                   '--failed for good, or the attempts used up--> dead
    dead --an operator's retry--> scheduled (a fresh round of attempts, due now)
    scheduled | retrying | sending --the contact moved on (unless: moved_on)--> cancelled
    sending, its lease run out --the attempt is abandoned--> claimed again, or dead

``Status`` is what a follow-up is now (the ``followups.status`` column).
``Change`` is what happened to it, as published on ``funnel.followups.v1`` and
counted by the metrics: a failed attempt is a ``failed`` change whether the
follow-up is then ``retrying`` or ``dead``. The transitions below decide; the
PostgreSQL adapters only store what they decided, in the same transaction as
the outbox rows for the changes.

Pure: the spellings live here and nowhere else in the code (the migrations are
history and keep theirs).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ABANDONED_ERROR",
    "CLAIMABLE",
    "AttemptOutcome",
    "Change",
    "NotRetryable",
    "Status",
    "Transition",
    "announces_due_time",
    "attempt_outcome",
    "attempted",
    "moved_on",
    "retried",
    "scheduled",
    "taken_over",
]


class Status(StrEnum):
    """What a follow-up is now."""

    SCHEDULED = "scheduled"  # Waiting for its due time: new, or retried by an operator.
    SENDING = "sending"  # Claimed: an attempt is in flight under a lease.
    RETRYING = "retrying"  # An attempt failed; the next one is due after a backoff.
    SENT = "sent"
    DEAD = "dead"  # Failed for good, or out of attempts; an operator may retry it.
    CANCELLED = "cancelled"  # The contact moved on before it was sent.


# Taken by a dispatcher once due. A ``sending`` one is taken again only once
# its lease ran out (its dispatcher died or hung).
CLAIMABLE: tuple[Status, ...] = (Status.SCHEDULED, Status.RETRYING)


class Change(StrEnum):
    """What happened to a follow-up: the ``status`` of a ``FollowUpEvent``."""

    SCHEDULED = "scheduled"
    FAILED = "failed"  # One attempt failed; the follow-up is retrying, or dead.
    SENT = "sent"
    DEAD = "dead"
    CANCELLED = "cancelled"


class AttemptOutcome(StrEnum):
    """How one delivery attempt ended (``followup_attempts.outcome``)."""

    IN_FLIGHT = "in_flight"  # Claimed and not yet recorded.
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABANDONED = "abandoned"  # Its dispatcher stopped or hung; another took it over.


ABANDONED_ERROR = "the attempt did not finish: the dispatcher stopped or hung"


@dataclass(frozen=True)
class Transition:
    """A follow-up's next status, and the changes that tell the world about it."""

    to: Status
    changes: tuple[Change, ...]
    error: str | None = None  # Stored as the follow-up's last error (None clears it).


class NotRetryable(ValueError):
    """Only a dead follow-up can be retried."""

    def __init__(self, status: Status) -> None:
        self.status = status
        super().__init__(f"only a dead follow-up can be retried; this one is {status}")


def scheduled() -> Transition:
    """A rule matched: a new follow-up, due at the trigger's time plus the rule's delay."""
    return Transition(Status.SCHEDULED, (Change.SCHEDULED,))


def taken_over(*, attempts: int, max_attempts: int) -> Transition | None:
    """A ``sending`` follow-up whose lease ran out: its attempt is abandoned.

    Dead when that was the last attempt of its round; None: it may be tried again.
    """
    if attempts >= max_attempts:
        return Transition(Status.DEAD, (Change.DEAD,), ABANDONED_ERROR)
    return None


def moved_on(
    *, unless_moved_on: bool, stage: str | None, current_stage: str | None
) -> Transition | None:
    """Cancelled when its rule says ``unless: moved_on`` and the contact's latest
    stage is another one; None: it is still wanted."""
    if unless_moved_on and current_stage is not None and current_stage != stage:
        return Transition(
            Status.CANCELLED, (Change.CANCELLED,), f"the contact moved on to {current_stage}"
        )
    return None


def attempted(
    *, ok: bool, final: bool, error: str | None, attempts_this_round: int, max_attempts: int
) -> Transition:
    """After an attempt: sent; or failed, then retried later, or dead when the failure
    was final or the round's attempts are used up."""
    if ok:
        return Transition(Status.SENT, (Change.SENT,))
    if final or attempts_this_round >= max_attempts:
        return Transition(Status.DEAD, (Change.FAILED, Change.DEAD), error)
    return Transition(Status.RETRYING, (Change.FAILED,), error)


def retried(status: Status) -> Transition:
    """An operator's retry: a dead follow-up gets a fresh round of attempts, due now.

    Raises ``NotRetryable`` for any other status.
    """
    if status is not Status.DEAD:
        raise NotRetryable(status)
    return Transition(Status.SCHEDULED, (Change.SCHEDULED,))


def attempt_outcome(ok: bool) -> AttemptOutcome:
    return AttemptOutcome.SUCCEEDED if ok else AttemptOutcome.FAILED


def announces_due_time(change: Change) -> bool:
    """Whether the event for ``change`` carries the time the next attempt is due."""
    return change in (Change.SCHEDULED, Change.FAILED)
