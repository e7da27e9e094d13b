"""Is this identity value an id? One answer for every service.

Segment's own pipeline treats some values as "no id at all": a client library
that sends ``"undefined"`` or ``"-1"`` for a missing user must not make all
such users one contact. Ingest refuses a message with no usable id; the stage
engine neither keys contacts by nor links contacts through such values.
"""

from __future__ import annotations

__all__ = ["BLOCKED_IDS", "is_blocked_id", "usable_id"]

# Compared after stripping surrounding blanks and lower-casing.
BLOCKED_IDS = frozenset({"", "null", "undefined", "anonymous", "0", "-1"})


def usable_id(value: str | None) -> str | None:
    """``value`` if it can name a contact, else None (missing, blank or blocked)."""
    if value is None or value.strip().lower() in BLOCKED_IDS:
        return None
    return value


def is_blocked_id(value: object) -> bool:
    """True for a string that is present but names nobody (``""``, ``"null"``, ``"-1"``...)."""
    return isinstance(value, str) and usable_id(value) is None
