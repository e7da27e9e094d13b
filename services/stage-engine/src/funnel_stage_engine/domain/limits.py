"""Bounds on what one contact's state may hold: traits, remembered ids, id lengths.

Every value in a contact event comes from a client, and the browser write key
is public. So the state a client can grow is bounded here, in the domain,
with limits that the worker takes from its settings:

- **Traits**, by count and by their JSON size. An event whose traits would
  take the contact past either bound is refused as a whole (the worker
  dead-letters it with ``state_limit``); the contact keeps its last good
  state. Dropping some traits instead would silently change what a user
  relies on (the e-mail a follow-up goes to, what the read API shows), and
  the dead letter keeps the original for an operator to replay once the
  limit is raised. A merge never fails: the identified contact's traits win
  and the anonymous contact's are added while they fit.
- **Remembered messageIds** (the dedupe window): the newest ``dedupe_window``
  ids whose lengths add up to at most ``dedupe_window_bytes``; older ones are
  forgotten first.
- **Ids**: a messageId or contact id longer than ``max_id_chars`` is refused
  (``id_too_long``).

Pure: no I/O and no clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_LIMITS",
    "StateLimits",
    "id_too_long",
    "json_size",
    "merge_traits",
    "recent_ids",
    "traits_over_limit",
]


@dataclass(frozen=True)
class StateLimits:
    """What one contact's state may hold (defaults match the worker's settings)."""

    max_traits: int = 200
    max_traits_bytes: int = 32_768
    dedupe_window: int = 200
    dedupe_window_bytes: int = 16_384
    max_id_chars: int = 255


DEFAULT_LIMITS = StateLimits()


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON (how the state table stores it, near enough)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return len(text.encode("utf-8", "surrogatepass"))


def traits_over_limit(traits: Mapping[str, Any], limits: StateLimits) -> str | None:
    """Why ``traits`` are more than a contact may keep, or None when they fit."""
    if len(traits) > limits.max_traits:
        return f"the contact would have {len(traits)} traits; at most {limits.max_traits} are kept"
    size = json_size(traits)
    if size > limits.max_traits_bytes:
        return (
            f"the contact's traits would take {size} bytes as JSON;"
            f" at most {limits.max_traits_bytes} are kept"
        )
    return None


def merge_traits(
    ours: Mapping[str, Any], theirs: Mapping[str, Any], limits: StateLimits
) -> dict[str, Any]:
    """``ours`` (the identified contact's, which win) plus as many of ``theirs`` as fit."""
    merged = {**theirs, **ours}
    if traits_over_limit(merged, limits) is None:
        return merged
    kept = dict(ours)
    size = json_size(kept)
    for name, value in theirs.items():  # In the anonymous contact's own order: deterministic.
        if name in kept or len(kept) >= limits.max_traits:
            continue
        # One member's share of the object: "name":value plus a comma.
        extra = json_size({name: value}) - 1
        if size + extra <= limits.max_traits_bytes:
            kept[name] = value
            size += extra
    return kept


def recent_ids(ids: Sequence[str], limits: StateLimits) -> list[str]:
    """The newest of ``ids`` (oldest first) within the window's count and bytes."""
    kept: list[str] = []
    size = 0
    for message_id in reversed(ids[-limits.dedupe_window :] if limits.dedupe_window else []):
        size += len(message_id.encode("utf-8", "surrogatepass"))
        if size > limits.dedupe_window_bytes:
            break
        kept.append(message_id)
    kept.reverse()
    return kept


def id_too_long(ids: Mapping[str, str | None], limits: StateLimits) -> str | None:
    """Why one of the named ids is longer than a contact's state may hold, or None."""
    for name, value in ids.items():
        if value is not None and len(value) > limits.max_id_chars:
            return f"{name} has {len(value)} characters; at most {limits.max_id_chars} are accepted"
    return None
