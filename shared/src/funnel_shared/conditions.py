"""The matching operators of funnel rules and follow-up rules: one model, one meaning.

A condition is keyed by a dotted path (``page.path`` is ``values["page"]["path"]``)
and is either a literal (equality) or an object with exactly one operator:
``equals``, ``in``, ``exists``, ``gt``, ``gte``, ``lt``, ``lte``, ``prefix``,
``contains``. The stage engine's funnel ``match`` and the notifier's ``when``
both use it, so a rule means the same thing in either file.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["MISSING", "OPERATORS", "Condition", "all_hold", "lookup"]

OPERATORS = ("equals", "in", "exists", "gt", "gte", "lt", "lte", "prefix", "contains")


class _Missing:
    """The value at a path that is absent (distinct from a JSON null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Condition(BaseModel):
    """One test on one value. A bare literal in a file means ``{equals: literal}``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    exists: bool | None = None
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    prefix: str | None = None
    contains: Any = None

    @model_validator(mode="before")
    @classmethod
    def _literal_means_equals(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return data
        return {"equals": data}

    @model_validator(mode="after")
    def _exactly_one_operator(self) -> Condition:
        given = sorted(self.model_fields_set)
        if len(given) != 1:
            names = ", ".join("in" if name == "in_" else name for name in given) or "none"
            raise ValueError(
                f"a condition takes exactly one operator of {', '.join(OPERATORS)}; got {names}"
            )
        return self

    @property
    def operator(self) -> str:
        """The operator's field name (``in_`` for ``in``)."""
        return next(iter(self.model_fields_set))

    def holds(self, value: Any) -> bool:
        """Whether the condition holds for ``value`` (``MISSING`` when the path is absent)."""
        op = self.operator
        if op == "exists":
            return (value is not MISSING and value is not None) == self.exists
        if value is MISSING:
            return False
        if op == "equals":
            return _same(value, self.equals)
        if op == "in_":
            return any(_same(value, option) for option in self.in_ or [])
        if op == "prefix":
            return isinstance(value, str) and value.startswith(self.prefix or "")
        if op == "contains":
            if isinstance(value, str):
                return isinstance(self.contains, str) and self.contains in value
            return isinstance(value, list) and any(_same(item, self.contains) for item in value)
        return _compare(op, value, getattr(self, op))


def lookup(values: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or ``MISSING``; a key that itself holds dots is tried first."""
    if path in values:
        return values[path]
    current: Any = values
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return MISSING
        current = current[part]
    return current


def all_hold(conditions: Mapping[str, Condition], values: Mapping[str, Any]) -> bool:
    """Whether every condition holds for the value at its path in ``values``."""
    return all(condition.holds(lookup(values, path)) for path, condition in conditions.items())


def _same(value: Any, expected: Any) -> bool:
    # JSON true is not 1: Python's True == 1 would make {equals: 1} match a boolean.
    if isinstance(value, bool) or isinstance(expected, bool):
        return type(value) is type(expected) and value == expected
    return bool(value == expected)


def _compare(op: str, value: Any, bound: float) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    number: float = value  # int or float; no float() so huge ints cannot overflow
    if op == "gt":
        return number > bound
    if op == "gte":
        return number >= bound
    if op == "lt":
        return number < bound
    return number <= bound
