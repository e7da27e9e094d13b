"""One duration grammar for funnel files and follow-up rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from funnel_shared.durations import Duration, PositiveDuration, parse_duration
from pydantic import BaseModel, ValidationError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("12h", timedelta(hours=12)),
        ("1.5h", timedelta(minutes=90)),
        ("14d", timedelta(days=14)),
        ("2w", timedelta(weeks=2)),
        ("250ms", timedelta(milliseconds=250)),
        (" 7 d ", timedelta(days=7)),
        (1.5, timedelta(seconds=1.5)),
        (90, timedelta(seconds=90)),
    ],
)
def test_a_number_and_a_unit_is_a_duration(text: str | float, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["7", "7 days", "d", "1,5h", "1.h", "", "2 weeks"])
def test_text_that_is_not_a_number_and_a_unit_is_refused_with_the_grammar(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration like 30s, 15m, 1\.5h, 14d or 2w"):
        parse_duration(text)


@pytest.mark.parametrize("value", [True, None, [1], {"d": 1}])
def test_a_value_that_is_neither_text_nor_a_number_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="a duration is text such as 30s"):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["-1d", "-0.5h", -3])
def test_a_negative_duration_is_refused(text: str | float) -> None:
    with pytest.raises(ValueError, match="a duration cannot be negative"):
        parse_duration(text)


def test_zero_is_a_duration_unless_it_must_be_positive() -> None:
    assert parse_duration("0s") == timedelta(0)
    with pytest.raises(ValueError, match="a duration must be longer than zero"):
        parse_duration("0d", positive=True)


class _Rule(BaseModel):
    after: Duration = timedelta(0)
    within: PositiveDuration | None = None


def test_the_field_types_parse_text_and_keep_timedeltas() -> None:
    rule = _Rule.model_validate({"after": "1.5h", "within": timedelta(days=1)})
    assert (rule.after, rule.within) == (timedelta(minutes=90), timedelta(days=1))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"within": "0s"}, "a duration must be longer than zero"),
        ({"within": timedelta(0)}, "a duration must be longer than zero"),
        ({"after": "-1s"}, "a duration cannot be negative"),
        ({"after": "2 days"}, "'2 days' is not a duration like"),
    ],
)
def test_the_field_types_refuse_with_the_field_named(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _Rule.model_validate(data)
    [error] = caught.value.errors()
    assert error["loc"] == tuple(data)
    assert message in error["msg"]


def test_the_json_schema_shows_the_grammar() -> None:
    schema = _Rule.model_json_schema()
    assert schema["properties"]["after"]["type"] == "string"
    assert "1.5h" in schema["properties"]["after"]["examples"]
