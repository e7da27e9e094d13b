"""Batches: unpack ``/v1/batch`` bodies and merge batch-level fields into each message.

Each merged item is measured without encoding it (``limits.MergedSizes``) and searched
for U+0000 in its own part only (the batch-level part is searched once): checking a
batch costs what the request cost, however many items share a large ``context``.
"""

from __future__ import annotations

from typing import Any

from funnel_ingest.errors import IngestError
from funnel_ingest.limits import MergedSizes, find_nul, json_size, measure
from funnel_ingest.validation import Measured

__all__ = ["BATCH_LEVEL_FIELDS", "UnpackedBatch", "deep_merge", "unpack_batch"]

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


class UnpackedBatch(list[Any]):
    """The merged items, with ``measured[i]`` for item ``i`` (None for non-objects)."""

    measured: list[Measured | None]
    merged_bytes: int


def unpack_batch(
    body: Any, *, max_messages: int, max_merged_bytes: int | None = None
) -> UnpackedBatch:
    """The batch's messages with batch-level ``context``, ``integrations`` and ``sentAt``
    merged in. Items that are not objects are returned as they are, for per-item rejection.

    Refuses (413) a batch whose merged messages add up to more than ``max_merged_bytes``,
    and (400) one whose batch-level fields hold U+0000, before any item is validated.
    """
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
    shared_nul = find_nul({**shared, "sentAt": sent_at})
    if shared_nul is not None:
        raise IngestError(
            400,
            "invalid_batch",
            f"{shared_nul}: holds U+0000 (the NUL character), which no string may hold",
            errors=[f"{shared_nul}: holds U+0000"],
        )
    sizes = MergedSizes()
    unpacked = UnpackedBatch()
    unpacked.measured = []
    total = 0
    for item in items:
        if not isinstance(item, dict):
            unpacked.append(item)
            unpacked.measured.append(None)
            continue
        merged = dict(item)
        # One encoding of the item gives its size and shows whether it holds U+0000 at all.
        size, nul_at = measure(item)
        for name, value in shared.items():
            own = item.get(name)
            if own is None:
                size = _with_member(size, merged, name, sizes.size_of(value))
                merged[name] = value
            elif isinstance(own, dict):
                merged[name] = deep_merge(value, own)
                size = _replaced(size, json_size(own), sizes.merged_size(value, own))
            # Anything else is the message's own mistake, reported by its validation.
        if sent_at is not None and "sentAt" not in item:
            size = _with_member(size, merged, "sentAt", json_size(sent_at))
            merged["sentAt"] = sent_at
        unpacked.append(merged)
        unpacked.measured.append(Measured(size=size, nul_at=nul_at))
        total += size or 0
    unpacked.merged_bytes = total
    if max_merged_bytes is not None and total > max_merged_bytes:
        raise IngestError(
            413,
            "payload_too_large",
            f"the batch's messages, with the batch-level context and integrations merged into"
            f" each, come to {total} bytes, over the {max_merged_bytes} byte limit",
        )
    return unpacked


def _with_member(
    size: int | None, item: dict[str, Any], name: str, value: int | None
) -> int | None:
    """``size`` of ``item`` once ``name`` is set to a value of ``value`` bytes."""
    key = json_size(name)
    if size is None or value is None or key is None:
        return None
    if name in item:  # Present as null: its value is replaced.
        return size - len("null") + value
    return size + key + 1 + value + (1 if item else 0)


def _replaced(size: int | None, old: int | None, new: int | None) -> int | None:
    if size is None or old is None or new is None:
        return None
    return size - old + new
