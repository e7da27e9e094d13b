"""Bounds on what one message may hold, checked before it is validated: pure, no I/O.

- Ids (``userId``, ``anonymousId``, ``messageId``, ``groupId``, ``previousId``) are at most
  ``max_id_chars`` characters and hold no control characters (C0, DEL, C1).
- No string anywhere in a message, key or value, at any depth, holds U+0000: PostgreSQL
  cannot store it in text or JSONB, so it is refused here, naming the field's path.
- Batch-level ``context`` and ``integrations`` are merged into each item: the merged
  sizes are computed from the sizes of the parts, never by encoding each merged copy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

__all__ = [
    "ID_FIELDS",
    "MergedSizes",
    "MessageLimits",
    "find_nul",
    "id_problems",
    "json_size",
    "measure",
]

ID_FIELDS = ("userId", "anonymousId", "messageId", "groupId", "previousId")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class MessageLimits:
    """The per-message bounds of ``IngestSettings``, as the pure checks take them."""

    max_id_chars: int = 255
    future_tolerance: timedelta = timedelta(minutes=5)


def id_problems(message: dict[str, Any], *, max_chars: int) -> list[str]:
    """One line per id field that is too long or holds a control character."""
    problems = []
    for name in ID_FIELDS:
        value = message.get(name)
        if not isinstance(value, str):
            continue
        if len(value) > max_chars:
            problems.append(
                f"{name}: is {len(value)} characters long, over the {max_chars} character limit"
            )
        elif (found := _CONTROL.search(value)) is not None:
            problems.append(
                f"{name}: holds the control character U+{ord(found.group()):04X},"
                " not allowed in ids"
            )
    return problems


def find_nul(value: Any, *, encoded: str | None = None) -> str | None:
    """The path (e.g. ``traits.tags[2]``) of the first key or string holding U+0000, else None.

    ``encoded`` is ``value`` as compact JSON when the caller has it: JSON writes U+0000 as
    ``\\u0000``, so without that text in it there is nothing to look for.
    """
    if encoded is not None and "\\u0000" not in encoded:
        return None
    for path, item in _walk(value):
        if isinstance(item, str) and "\x00" in item:
            return path.replace("\x00", "\\u0000") or "(the message)"
    return None


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every key (as its own path) and value with its path, iteratively (no recursion)."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        yield path, item
        if isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and "\x00" in key:
                    yield child_path, key
                stack.append((child_path, child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", child) for index, child in enumerate(item))


def json_size(value: Any) -> int | None:
    """Bytes of ``value`` as compact UTF-8 JSON; None if it cannot be encoded (lone surrogates)."""
    try:
        return len(_compact.encode(value).encode("utf-8"))
    except UnicodeEncodeError:
        return None


def measure(value: Any) -> tuple[int | None, str | None]:
    """``value``'s size as compact UTF-8 JSON (None: lone surrogates, not valid Unicode) and
    the path of its first string holding U+0000, from one encoding: the value is walked only
    when its JSON text holds ``\\u0000``."""
    text = _compact.encode(value)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None, None
    return size, find_nul(value, encoded=text)


class MergedSizes:
    """Sizes of ``deep_merge(base, override)`` from the sizes of the parts.

    The base (a batch-level object) is measured once, each of its objects with the size of
    each member; a merged size then costs only the override's own members, so 2,500 items
    sharing one large ``context`` cost what the request cost, not 2,500 encodings of it.
    """

    def __init__(self) -> None:
        # id(base object) -> (its size, {key: size of '"key":value'}); the objects are
        # kept alive by the body for as long as this is used.
        self._members: dict[int, tuple[int, dict[str, int]]] = {}

    def size_of(self, value: Any) -> int | None:
        if isinstance(value, dict):
            measured = self._measure(value)
            return None if measured is None else measured[0]
        return json_size(value)

    def _measure(self, base: dict[str, Any]) -> tuple[int, dict[str, int]] | None:
        known = self._members.get(id(base))
        if known is not None:
            return known
        members: dict[str, int] = {}
        for key, child in base.items():
            key_size = json_size(key)
            child_size = self.size_of(child)
            if key_size is None or child_size is None:
                return None
            members[key] = key_size + 1 + child_size
        total = 2 + sum(members.values()) + max(len(members) - 1, 0)
        self._members[id(base)] = (total, members)
        return total, members

    def merged_size(self, base: dict[str, Any], override: dict[str, Any]) -> int | None:
        """``json_size(deep_merge(base, override))`` without building or encoding it."""
        measured = self._measure(base)
        if measured is None:
            return None
        _, members = measured
        count = len(members)
        total = sum(members.values())
        for key, value in override.items():
            below = base.get(key)
            if isinstance(value, dict) and isinstance(below, dict):
                value_size = self.merged_size(below, value)
            else:
                value_size = json_size(value)
            key_size = json_size(key)
            if value_size is None or key_size is None:
                return None
            if key in members:
                total -= members[key]
            else:
                count += 1
            total += key_size + 1 + value_size
        return 2 + total + max(count - 1, 0)
