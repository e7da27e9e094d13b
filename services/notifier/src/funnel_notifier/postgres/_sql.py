"""Enum values rendered into SQL text.

Statuses are written into the query text rather than passed as parameters where
the planner has to see them: the partial index ``followups_due`` (on the due time
of the follow-ups still to send) serves a query only when its status filter is a
constant, which a generic plan over ``$n`` parameters is not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum

__all__ = ["literal", "literals"]

_PLAIN = re.compile(r"^[a-z_]+$")


def literal(value: StrEnum) -> str:
    """A quoted SQL text constant for one enum member."""
    text = value.value
    if not _PLAIN.match(text):  # Only our own enum values, never input, reach this.
        raise ValueError(f"{text!r} is not a plain lower-case word")
    return f"'{text}'"


def literals(values: Iterable[StrEnum]) -> str:
    """Quoted constants separated by commas, for an ``IN (...)`` list."""
    return ", ".join(literal(value) for value in values)
