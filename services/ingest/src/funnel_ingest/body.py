"""Request bodies: bounded reading, gzip, content types and JSON.

Nothing here holds more than the configured limit in memory: the body is
streamed and reading stops past the limit, and gzip is inflated in bounded
steps, so a gzip bomb costs at most ``limit`` bytes before it gets 413.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import AsyncIterator
from typing import Any

from funnel_ingest.errors import IngestError

__all__ = [
    "MAX_JSON_DEPTH",
    "check_content_type",
    "decode_json",
    "inflate",
    "read_body",
    "too_large",
]

# Deeper JSON is refused: nothing real nests this far, and deep nesting exhausts the
# recursion of every JSON encoder and validator downstream.
MAX_JSON_DEPTH = 64
# Browsers send text/plain so that a cross-origin post needs no preflight.
ACCEPTED_CONTENT_TYPES = frozenset({"application/json", "text/plain"})
_GZIP_OR_ZLIB = 32 + zlib.MAX_WBITS  # Auto-detect the gzip or zlib header.


def too_large(message: str) -> IngestError:
    return IngestError(413, "payload_too_large", message)


def check_content_type(content_type: str | None) -> None:
    """JSON or text/plain holding JSON; no header at all is taken as JSON."""
    if not content_type:
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in ACCEPTED_CONTENT_TYPES or media_type.endswith("+json"):
        return
    raise IngestError(
        415,
        "unsupported_media_type",
        f"content type {media_type!r} is not accepted: send application/json or text/plain",
    )


async def read_body(
    chunks: AsyncIterator[bytes], *, content_length: str | None, limit: int
) -> bytes:
    """The raw body, refusing (413) as soon as it is known to be over ``limit``."""
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise too_large(f"request body of {content_length} bytes is over the {limit} byte limit")
    received = bytearray()
    async for chunk in chunks:
        received += chunk
        if len(received) > limit:
            raise too_large(f"request body is over the {limit} byte limit")
    return bytes(received)


def inflate(data: bytes, *, content_encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding``: identity, gzip or deflate, at most ``limit`` bytes out."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return data
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise IngestError(
            415, "unsupported_encoding", f"content encoding {encoding!r} is not accepted"
        )
    output = bytearray()
    remaining = data
    # A gzip body may hold several members one after the other; inflate them all.
    while remaining:
        inflater = zlib.decompressobj(_GZIP_OR_ZLIB)
        try:
            output += inflater.decompress(remaining, limit + 1 - len(output))
        except zlib.error as exc:
            raise IngestError(400, "bad_encoding", f"body is not valid {encoding}: {exc}") from exc
        if len(output) > limit:
            raise too_large(f"decompressed body is over the {limit} byte limit")
        if not inflater.eof:
            raise IngestError(400, "bad_encoding", f"{encoding} body is truncated")
        remaining = inflater.unused_data
    return bytes(output)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


# What json.loads(text, parse_constant=..., parse_float=...) uses, built once: json.loads
# builds a new decoder on every call that passes options.
_decoder = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def decode_json(data: bytes) -> Any:
    """Strict UTF-8 JSON. NaN and Infinity are refused: they are not JSON."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(400, "invalid_utf8", f"body is not valid UTF-8: {exc}") from exc
    try:
        if text.startswith("\ufeff"):  # As json.loads says it.
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _decoder.decode(text)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers with too many digits.
        raise IngestError(400, "malformed_json", f"malformed JSON: {exc}") from exc
    # Each level of nesting needs its own bracket: with few brackets there is nothing to walk.
    brackets = text.count("{") + text.count("[")
    if brackets > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
        raise IngestError(400, "too_deep", f"JSON nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """True if objects and arrays nest more than ``limit`` levels. Iterative, not recursive:
    one nesting level at a time, and only objects and arrays are kept for the next one."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            below += [child for child in children if isinstance(child, dict | list)]
        level = below
    return False
