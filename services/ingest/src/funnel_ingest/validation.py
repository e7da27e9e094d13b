"""Per-message validation and enrichment: one raw JSON value in, a ContactEvent or the reasons out.

Pure: no I/O, so every rule is tested directly (tests/unit/ingest/test_validation.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from funnel_shared.events import ContactEvent, SegmentMessage, SourceKind
from funnel_shared.ids import is_blocked_id
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from funnel_ingest.limits import MessageLimits, id_problems, json_size, measure
from funnel_ingest.normalize import normalize

__all__ = [
    "MESSAGE_TYPES",
    "Enrichment",
    "Invalid",
    "Measured",
    "Valid",
    "check_message",
    "encoded_size",
    "original_text",
]

MESSAGE_TYPES = ("track", "identify", "page", "screen", "group", "alias")
# Segment accepts numeric ids and stores them as strings.
_ID_FIELDS = ("userId", "anonymousId", "previousId", "groupId")
_OBJECT_FIELDS = ("context", "integrations", "properties", "traits")
DEFAULT_LIMITS = MessageLimits()
_message_adapter: TypeAdapter[Any] = TypeAdapter(SegmentMessage)


@dataclass(frozen=True)
class Enrichment:
    """What ingest adds to every message of one request."""

    received_at: datetime
    source: str
    client_ip: str | None
    new_message_id: Callable[[], str] | None = field(default=None)
    source_kind: SourceKind = "browser"  # The write key's kind, from the settings.


@dataclass(frozen=True)
class Valid:
    event: ContactEvent


@dataclass(frozen=True)
class Invalid:
    reason: str  # A short label for metrics, e.g. "missing_field".
    errors: list[str]


@dataclass(frozen=True)
class Measured:
    """A batch item already measured and searched for U+0000 by the batch (``batch.py``),
    which knows its size without encoding the merged copy."""

    size: int | None  # None: lone surrogates, not valid Unicode.
    nul_at: str | None  # Path of a string holding U+0000.


def encoded_size(value: Any) -> int | None:
    """Bytes of ``value`` as compact UTF-8 JSON; None if it cannot be encoded (lone surrogates)."""
    return json_size(value)


def _measure(value: Any) -> Measured:
    size, nul_at = measure(value)
    return Measured(size=size, nul_at=nul_at)


def original_text(value: Any) -> str:
    """The message as JSON text for a dead letter; escapes what UTF-8 cannot carry."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True)
    return text


def check_message(
    raw: Any,
    *,
    message_type: str | None = None,
    max_bytes: int,
    enrichment: Enrichment,
    limits: MessageLimits = DEFAULT_LIMITS,
    measured: Measured | None = None,
) -> Valid | Invalid:
    """Validate and enrich one message. ``message_type`` is set by the single-message routes;
    ``measured`` by batches, which measure their merged items without encoding them."""
    if not isinstance(raw, dict):
        return Invalid("not_an_object", ["the message must be a JSON object"])
    if measured is None:
        measured = _measure(raw)
    size = measured.size
    if size is None:
        return Invalid("invalid_unicode", ["the message holds a lone surrogate, not valid Unicode"])
    if size > max_bytes:
        return Invalid("too_large", [f"the message is {size} bytes, over the {max_bytes} limit"])
    if measured.nul_at is not None:
        return Invalid(
            "nul_character",
            [f"{measured.nul_at}: holds U+0000 (the NUL character), which no string may hold"],
        )
    # A null object is an absent one, as SDKs that serialize empty fields send them.
    body = {
        key: value
        for key, value in raw.items()
        if key != "writeKey" and not (key in _OBJECT_FIELDS and value is None)
    }
    for name in _ID_FIELDS:
        if isinstance(body.get(name), int | float) and not isinstance(body[name], bool):
            body[name] = _number_text(body[name])
    problems = id_problems(body, max_chars=limits.max_id_chars)
    if problems:
        return Invalid("invalid_id", problems)
    if message_type is not None:
        body["type"] = message_type
    elif body.get("type") not in MESSAGE_TYPES:
        return Invalid("unknown_type", [f"type: must be one of {', '.join(MESSAGE_TYPES)}"])
    if body["type"] == "alias":
        blocked = [name for name in ("userId", "previousId") if is_blocked_id(body.get(name))]
        if blocked:
            return Invalid("missing_identity", [f"{name}: is required" for name in blocked])
    try:
        message = _message_adapter.validate_python(body)
        extra = {"new_message_id": enrichment.new_message_id} if enrichment.new_message_id else {}
        event = normalize(
            message,
            received_at=enrichment.received_at,
            source=enrichment.source,
            source_kind=enrichment.source_kind,
            client_ip=enrichment.client_ip,
            future_tolerance=limits.future_tolerance,
            **extra,
        )
    except ValidationError as exc:
        details = exc.errors()
        return Invalid(_reason(details), [_describe(error) for error in details])
    except OverflowError:
        # sentAt and timestamp so far apart that the corrected time is before year 1 or after 9999.
        return Invalid("invalid_field", ["timestamp: out of range after clock skew correction"])
    return Valid(event)


def _number_text(number: int | float) -> str:
    return str(int(number)) if isinstance(number, float) and number.is_integer() else str(number)


def _reason(errors: list[ErrorDetails]) -> str:
    if any(error["type"] == "missing" for error in errors):
        return "missing_field"
    if any("userId or anonymousId" in error["msg"] for error in errors):
        return "missing_identity"
    return "invalid_field"


def _describe(error: ErrorDetails) -> str:
    location = ".".join(str(part) for part in error["loc"] if part not in MESSAGE_TYPES)
    return f"{location}: {error['msg']}" if location else str(error["msg"])
