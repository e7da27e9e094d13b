"""CloudEvents Kafka protocol binding (binary mode): attributes as ``ce_`` headers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

__all__ = ["CONTENT_TYPE", "cloudevent_headers", "header_map"]

CONTENT_TYPE = "application/json"


def cloudevent_headers(
    *, event_id: str, source: str, event_type: str, time: datetime
) -> list[tuple[str, bytes]]:
    """Headers for one record, in the shape aiokafka and faust take them."""
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", event_type.encode()),
        ("ce_time", time.isoformat().encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]


def header_map(headers: Sequence[tuple[str, bytes | None]] | Mapping[str, bytes]) -> dict[str, str]:
    """Decode record headers into a plain dict (last value wins)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {key: (value or b"").decode() for key, value in items}
