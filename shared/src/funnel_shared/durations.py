"""The one duration grammar of funnel files and follow-up rules.

A duration is a number and a unit: ``30s``, ``15m``, ``1.5h``, ``14d``, ``2w``
(also ``250ms``). The number may be decimal; blanks around it are allowed. A
bare number (a YAML ``int`` or ``float``, not text) counts as seconds, as
follow-up rules have always accepted. Text without a unit is refused: ``7``
in quotes is more likely a mistake than seven seconds.

``Duration`` (zero or more) and ``PositiveDuration`` (more than zero) are
pydantic field types that parse this grammar and also accept a ``timedelta``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

__all__ = ["EXAMPLES", "Duration", "PositiveDuration", "parse_duration"]

EXAMPLES = "30s, 15m, 1.5h, 14d or 2w"
_DURATION = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | float, *, positive: bool = False) -> timedelta:
    """``value`` as a timedelta; ``ValueError`` with a readable message otherwise.

    Negative durations are always refused; zero too when ``positive``.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"a duration is text such as {EXAMPLES}; got {value!r}")
    if isinstance(value, str):
        found = _DURATION.match(value)
        if found is None:
            raise ValueError(f"{value!r} is not a duration like {EXAMPLES}")
        seconds = float(found.group(1)) * _SECONDS[found.group(2)]
    else:
        seconds = float(value)
    return _checked(timedelta(seconds=seconds), positive=positive)


def _checked(duration: timedelta, *, positive: bool) -> timedelta:
    if duration < timedelta(0):
        raise ValueError("a duration cannot be negative")
    if positive and duration == timedelta(0):
        raise ValueError("a duration must be longer than zero")
    return duration


def _field(positive: bool) -> Any:
    def parse(value: Any) -> timedelta:
        if isinstance(value, timedelta):
            return _checked(value, positive=positive)
        return parse_duration(value, positive=positive)

    return parse


_SCHEMA = {"type": "string", "pattern": _DURATION.pattern, "examples": ["30s", "1.5h", "14d"]}

# Field types for pydantic models read from YAML.
Duration = Annotated[timedelta, BeforeValidator(_field(False)), WithJsonSchema(_SCHEMA)]
PositiveDuration = Annotated[timedelta, BeforeValidator(_field(True)), WithJsonSchema(_SCHEMA)]
