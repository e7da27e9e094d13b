"""Batches: unpack ``/v1/batch`` bodies and merge batch-level fields into each message."""

from __future__ import annotations

from typing import Any

from funnel_ingest.errors import IngestError

__all__ = ["BATCH_LEVEL_FIELDS", "deep_merge", "unpack_batch"]

# Batch-level objects that apply to every message; a message's own values win.
BATCH_LEVEL_FIELDS = ("context", "integrations")


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``; nested objects merge, anything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def unpack_batch(body: Any, *, max_messages: int) -> list[Any]:
    """The batch's messages with batch-level ``context``, ``integrations`` and ``sentAt``
    merged in. Items that are not objects are returned as they are, for per-item rejection."""
    if not isinstance(body, dict):
        raise IngestError(400, "invalid_batch", "the body must be a JSON object")
    items = body.get("batch")
    if not isinstance(items, list):
        raise IngestError(400, "invalid_batch", "batch: must be a list of messages")
    if len(items) > max_messages:
        raise IngestError(
            413,
            "payload_too_large",
            f"the batch holds {len(items)} messages, over the {max_messages} message limit",
        )
    shared = {name: body[name] for name in BATCH_LEVEL_FIELDS if isinstance(body.get(name), dict)}
    # SDKs stamp sentAt once per request; skew correction needs it on every message.
    sent_at = body.get("sentAt")
    unpacked = []
    for item in items:
        if isinstance(item, dict):
            merged = dict(item)
            for name, value in shared.items():
                own = item.get(name)
                if own is None:
                    merged[name] = value
                elif isinstance(own, dict):
                    merged[name] = deep_merge(value, own)
                # Anything else is the message's own mistake, reported by its validation.
            if sent_at is not None and "sentAt" not in item:
                merged["sentAt"] = sent_at
            unpacked.append(merged)
        else:
            unpacked.append(item)
    return unpacked
