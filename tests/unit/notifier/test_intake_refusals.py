"""Which failures make a record bad (dead-lettered) and which mean a dependency is down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from asyncpg.exceptions import _base as asyncpg_base
from funnel_notifier.domain.rules import load_rules
from funnel_notifier.domain.triggers import DueTimeOutOfRange, decode, plan_followups
from funnel_notifier.postgres.intake import refusal

from tests.support.notifier_support import stage_change, webhook_rules, write_rules


@pytest.mark.parametrize(
    ("exc", "start"),
    [
        (
            asyncpg.exceptions.CharacterNotInRepertoireError("0x00"),
            "refused by the database (22021",
        ),
        (
            asyncpg.exceptions.UntranslatableCharacterError("\\u0000"),
            "refused by the database (22P05",
        ),
        (
            asyncpg.exceptions.DatetimeFieldOverflowError("out of range"),
            "refused by the database (22008",
        ),
        (
            asyncpg.exceptions.NumericValueOutOfRangeError("too big"),
            "refused by the database (22003",
        ),
        (
            asyncpg.exceptions.ProgramLimitExceededError("index row"),
            "refused by the database (54000",
        ),
        (
            asyncpg_base.DataError("invalid input for query argument $1"),
            "refused by the database client",
        ),
        (
            OverflowError("date value out of range"),
            "refused by the database client (OverflowError)",
        ),
    ],
)
def test_content_errors_are_refusals(exc: BaseException, start: str) -> None:
    reason = refusal(exc)
    assert reason is not None and reason.startswith(start), reason


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.exceptions.ReadOnlySQLTransactionError("read-only"),
        asyncpg.exceptions.ConnectionDoesNotExistError("closed"),
        asyncpg.exceptions.CannotConnectNowError("starting up"),
        asyncpg.exceptions.AdminShutdownError("shutdown"),
        asyncpg.exceptions.TooManyConnectionsError("too many"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock"),
        asyncpg.exceptions.ObjectInUseError("in use"),
        asyncpg.InterfaceError("pool is closing"),
        ConnectionRefusedError("refused"),
        TimeoutError(),
    ],
)
def test_dependency_errors_are_not_refusals(exc: BaseException) -> None:
    assert refusal(exc) is None


def test_a_delay_past_the_year_9999_is_a_bad_record_not_a_crash(tmp_path: object) -> None:
    from pathlib import Path

    directory = Path(str(tmp_path))
    write_rules(directory, webhook_rules("lifecycle", ("now", "lead"), ("later", "lead", "30d")))
    rules = load_rules(directory)
    late = stage_change("c", event_time=datetime(9999, 12, 20, tzinfo=UTC))
    decoded = decode(late.model_dump_json(by_alias=True).encode())
    trigger = decoded.trigger  # type: ignore[union-attr]
    with pytest.raises(DueTimeOutOfRange, match="rule later: event time 9999-12-20"):
        plan_followups(trigger, rules)
    early = stage_change("c", event_time=datetime(9999, 12, 1, tzinfo=UTC))
    decoded = decode(early.model_dump_json(by_alias=True).encode())
    due = [p.due_at for p in plan_followups(decoded.trigger, rules)]  # type: ignore[union-attr]
    assert due == [early.event_time, early.event_time + timedelta(days=30)]
