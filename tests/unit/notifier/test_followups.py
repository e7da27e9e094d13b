"""A follow-up's lifecycle: one set of spellings, and transitions decided in one place."""

from __future__ import annotations

import ast
import re
import typing
from pathlib import Path

import funnel_notifier
import pytest
from funnel_notifier.domain import followups
from funnel_notifier.domain.followups import (
    CLAIMABLE,
    AttemptOutcome,
    Change,
    NotRetryable,
    Status,
    Transition,
)
from funnel_shared.events import FollowUpStatus

PACKAGE = Path(funnel_notifier.__file__).parent
MIGRATION = PACKAGE / "migrations" / "versions" / "0002_followups.py"


def _check_values(column: str) -> set[str]:
    """The values a CHECK constraint of the migration allows for ``column``."""
    match = re.search(
        rf"{column}\s+text NOT NULL CHECK \({column} IN\s*\(([^)]*)\)", MIGRATION.read_text()
    )
    assert match is not None, f"no CHECK on {column} in {MIGRATION.name}"
    return set(re.findall(r"'([a-z_]+)'", match.group(1)))


def test_the_status_enum_is_the_set_the_database_allows() -> None:
    assert {status.value for status in Status} == _check_values("status")


def test_the_attempt_outcomes_are_the_set_the_database_allows() -> None:
    assert {outcome.value for outcome in AttemptOutcome} == _check_values("outcome")


def test_the_published_changes_are_the_statuses_of_the_event_contract() -> None:
    assert {change.value for change in Change} == set(typing.get_args(FollowUpStatus))


def _spellings() -> set[str]:
    return {member.value for enum in (Status, Change, AttemptOutcome) for member in enum}


def _offending_strings(source: str, where: str) -> list[str]:
    """String constants that spell a status: exactly, or quoted as in SQL."""
    spellings = _spellings()
    quoted = re.compile(r"'(" + "|".join(sorted(spellings)) + r")'")
    found = []
    for node in ast.walk(ast.parse(source, where)):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        if node.value in spellings or quoted.search(node.value):
            found.append(f"{where}:{node.lineno}: {node.value.strip()!r}")
    return found


def test_status_spellings_appear_only_in_the_lifecycle_module() -> None:
    """SQL, metrics and the admin API take them from the enums (the migrations are
    history and keep theirs)."""
    modules = [
        path
        for path in sorted(PACKAGE.glob("**/*.py"))
        if "migrations" not in path.parts and path.name != "followups.py"
    ]
    assert len(modules) > 15
    offending = [
        line
        for path in modules
        for line in _offending_strings(path.read_text(), str(path.relative_to(PACKAGE)))
    ]
    assert offending == []


def test_the_spelling_check_sees_a_status_in_sql_and_as_a_label() -> None:
    source = 'Q = "UPDATE followups SET status = \'sent\' WHERE id = $1"\nS = "dead"\nT = "stale"\n'
    assert len(_offending_strings(source, "probe.py")) == 2


def test_claimable_statuses_wait_for_a_dispatcher() -> None:
    assert set(CLAIMABLE) == {Status.SCHEDULED, Status.RETRYING}


def test_a_new_followup_is_scheduled_and_says_so() -> None:
    assert followups.scheduled() == Transition(Status.SCHEDULED, (Change.SCHEDULED,))


def test_a_successful_attempt_sends_the_followup_and_clears_the_error() -> None:
    transition = followups.attempted(
        ok=True, final=False, error=None, attempts_this_round=8, max_attempts=8
    )
    assert transition == Transition(Status.SENT, (Change.SENT,), None)


def test_a_failed_attempt_with_attempts_left_is_retried() -> None:
    transition = followups.attempted(
        ok=False, final=False, error="HTTP 503", attempts_this_round=2, max_attempts=3
    )
    assert transition == Transition(Status.RETRYING, (Change.FAILED,), "HTTP 503")


def test_the_last_failed_attempt_of_a_round_is_dead() -> None:
    transition = followups.attempted(
        ok=False, final=False, error="HTTP 503", attempts_this_round=3, max_attempts=3
    )
    assert transition == Transition(Status.DEAD, (Change.FAILED, Change.DEAD), "HTTP 503")


def test_a_final_failure_is_dead_at_once() -> None:
    transition = followups.attempted(
        ok=False, final=True, error="HTTP 410", attempts_this_round=1, max_attempts=8
    )
    assert transition.to is Status.DEAD
    assert transition.changes == (Change.FAILED, Change.DEAD)


def test_an_abandoned_attempt_is_tried_again_while_attempts_are_left() -> None:
    assert followups.taken_over(attempts=2, max_attempts=3) is None


def test_an_abandoned_last_attempt_is_dead_without_a_failed_change() -> None:
    transition = followups.taken_over(attempts=3, max_attempts=3)
    assert transition == Transition(Status.DEAD, (Change.DEAD,), followups.ABANDONED_ERROR)


@pytest.mark.parametrize(
    ("unless_moved_on", "stage", "current_stage", "cancelled"),
    [
        (True, "trial", "paid", True),
        (True, "trial", "trial", False),
        (True, "trial", None, False),  # No stage change seen yet for the contact.
        (False, "trial", "paid", False),
    ],
)
def test_a_followup_is_cancelled_only_when_its_rule_asks_and_the_contact_moved_on(
    unless_moved_on: bool, stage: str, current_stage: str | None, cancelled: bool
) -> None:
    transition = followups.moved_on(
        unless_moved_on=unless_moved_on, stage=stage, current_stage=current_stage
    )
    if cancelled:
        assert transition == Transition(
            Status.CANCELLED, (Change.CANCELLED,), "the contact moved on to paid"
        )
    else:
        assert transition is None


def test_only_a_dead_followup_can_be_retried() -> None:
    assert followups.retried(Status.DEAD) == Transition(Status.SCHEDULED, (Change.SCHEDULED,))
    for status in Status:
        if status is not Status.DEAD:
            with pytest.raises(NotRetryable, match=f"this one is {status.value}$"):
                followups.retried(status)


def test_only_scheduled_and_failed_changes_announce_the_next_due_time() -> None:
    announcing = {change for change in Change if followups.announces_due_time(change)}
    assert announcing == {Change.SCHEDULED, Change.FAILED}


def test_an_attempt_outcome_is_succeeded_or_failed() -> None:
    assert followups.attempt_outcome(True) is AttemptOutcome.SUCCEEDED
    assert followups.attempt_outcome(False) is AttemptOutcome.FAILED
