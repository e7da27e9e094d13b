"""Hypothesis strategies for what a hostile client can send ingest: whole requests, mostly
well-formed (so that ingest accepts them and their content travels downstream), with
arbitrary JSON values in ``traits``, ``properties`` and ``context``.

Each request is ``(route, body)``; ``body`` is any JSON value (lone surrogates included:
the caller encodes them as JSON escapes, which JSON allows).
"""

from __future__ import annotations

import uuid
from datetime import UTC
from typing import Any

from hypothesis import strategies as st

__all__ = ["KNOWN_HOSTILE", "POOL", "requests", "with_contact"]

# A few contacts that many requests share, so that per-contact state grows.
POOL = [f"pool-{uuid.uuid4().hex[:8]}-{n}" for n in range(2)]

SPECIAL_TEXT = [
    "\x00",
    "a\x00b",
    "\ud800",  # Lone surrogates: valid in JSON as escapes, not in UTF-8.
    "x\udfffy",
    "\u202eevil\u202d",  # RTL override.
    "שלום עולם",
    "مرحبا",
    "🎉",
    "👩‍👩‍👧‍👦",
    "\U0010ffff",
    "\ufeff",
    "\r\n",
    "line\r\nBcc: victim@example.com",
    "a@x.example, b@y.example, c@z.example",
    "a@x.example\r\nBcc: b@y.example",
    "Zoë <zoe@example.com>",
    "zoe@example.com",
    "",
    " ",
    "null",
    "undefined",
    "0",
    "'; DROP TABLE contacts; --",
    "{{ traits.email }}",
    "%s%n",
]
# Near and over the limits (an id: 255 characters; a message: 32 KB).
LONG_TEXT = st.sampled_from([254, 255, 256, 1_000, 3_000, 16_000, 31_000]).flatmap(
    lambda n: st.sampled_from(["x", "é", "🎉", "\x00", "\ud800"]).map(lambda c: c * n)
)
# Every code point, weighted towards the odd ones: controls, lone surrogates, astral planes.
ANY_CHARACTER = st.one_of(
    st.characters(exclude_categories=()),
    st.characters(max_codepoint=0x9F),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()),
    st.characters(min_codepoint=0x10000),
)
texts = st.one_of(
    st.text(max_size=20),
    st.text(ANY_CHARACTER, max_size=20),
    st.sampled_from(SPECIAL_TEXT),
    LONG_TEXT,
)
SPECIAL_NUMBERS: list[int | float] = [
    1e308,
    -1e308,
    5e-324,
    -5e-324,
    2**63,
    2**63 - 1,
    -(2**63),
    -(2**63) - 1,
    2**64,
    10**40,
    -(10**40),
    10**400,
    0,
    -0.0,
    1.7976931348623157e308,
]
numbers = st.one_of(
    st.sampled_from(SPECIAL_NUMBERS),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)


def _nested(depth: int, leaf: Any, as_list: bool) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if as_list else {"n": value}
    return value


# Deep nesting around ingest's limit of 64 levels (the value sits a few levels down already).
deep = st.builds(
    _nested, st.sampled_from([8, 30, 58, 60, 61, 62, 63, 64, 70]), scalars, st.booleans()
)
values = st.one_of(json_values, deep)
emails = st.one_of(
    st.sampled_from(SPECIAL_TEXT),
    st.emails(),
    st.lists(st.emails(), min_size=2, max_size=3).map(", ".join),
    st.lists(st.emails(), min_size=1, max_size=3),  # A list where a string belongs.
    st.emails().map(lambda e: f"{e}\r\nBcc: victim@example.com"),
    values,
)
trait_maps = st.dictionaries(
    st.sampled_from(["email", "name", "plan", "phone", "company"]) | texts,
    values,
    max_size=5,
)
traits = st.one_of(
    trait_maps,
    st.builds(lambda base, email: {**base, "email": email}, trait_maps, emails),
    values,
)
STAMPS = [
    "9999-12-31T23:59:59Z",
    "9999-12-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "2999-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "1900-02-29T00:00:00Z",
    "2024-02-30T00:00:00Z",
    "2024-13-01T00:00:00Z",
    "not a date",
    "",
    "2024-01-01",
    "2024-01-01T00:00:00",  # Naive.
]
stamps = st.one_of(
    st.sampled_from(STAMPS),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    numbers,
    values,
)
HOSTILE_IDS = [
    "x" * 255,
    "x" * 256,
    "é" * 255,
    "🎉" * 255,
    "\u202eevil",
    "🎉",
    "a\nb",
    "a\x00b",
    "\ud800",
    " ",
    "",
    "null",
    "undefined",
    "0",
    "NaN",
    "canary-lookalike",
]


def _fresh(prefix: str) -> st.SearchStrategy[str]:
    return st.builds(lambda: f"{prefix}-{uuid.uuid4().hex[:12]}")


contact_ids: st.SearchStrategy[Any] = st.one_of(
    _fresh("fuzz"),
    _fresh("fuzz"),
    st.sampled_from(POOL),
    st.sampled_from(HOSTILE_IDS),
    _fresh("fuzz").map(lambda s: s + "\u202e🎉"),
    st.integers(),
    values,
)
EVENTS = [
    "Signed Up",
    "Order Completed",
    "Demo Requested",
    "Referral Sent",
    "Offer Claimed",
    "Product Viewed",
]
event_names = st.one_of(st.sampled_from(EVENTS), st.sampled_from(EVENTS), texts, values)
TYPES = ["track", "identify", "page", "screen", "group", "alias"]


def _message(message_type: str) -> st.SearchStrategy[dict[str, Any]]:
    required: dict[str, st.SearchStrategy[Any]] = {"type": st.just(message_type)}
    optional: dict[str, st.SearchStrategy[Any]] = {
        "anonymousId": contact_ids,
        "messageId": st.one_of(_fresh("m"), texts, st.sampled_from(HOSTILE_IDS), values),
        "timestamp": stamps,
        "sentAt": stamps,
        "originalTimestamp": stamps,
        "properties": st.dictionaries(texts, values, max_size=5) | values,
        "context": st.fixed_dictionaries(
            {}, optional={"traits": traits, "page": values, "ip": texts, "userAgent": texts}
        )
        | st.dictionaries(texts, values, max_size=3),
        "integrations": values,
    }
    required["userId"] = contact_ids
    if message_type == "track":
        required["event"] = event_names
    elif message_type in ("page", "screen"):
        optional["name"] = st.one_of(st.just("Pricing"), texts)
    elif message_type == "identify":
        optional["traits"] = traits
    elif message_type == "group":
        required["groupId"] = st.one_of(_fresh("g"), texts)
        optional["traits"] = traits
    elif message_type == "alias":
        required["previousId"] = contact_ids
    return st.fixed_dictionaries(required, optional=optional)


messages = st.sampled_from(TYPES).flatmap(_message)


def _big_traits(contact: str, key: str, size: int) -> dict[str, Any]:
    return {"type": "identify", "userId": contact, "traits": {key: "t" * size}}


# One contact made to hold ever more traits, 20-30 KB a call (the 1 MB over 40 calls).
state_pressure = st.builds(
    _big_traits,
    st.sampled_from(POOL),
    st.builds(lambda: f"k{uuid.uuid4().hex[:16]}"),
    st.integers(min_value=20_000, max_value=30_000),
)
batches = st.fixed_dictionaries(
    {"batch": st.lists(messages | state_pressure | values, min_size=1, max_size=8)},
    optional={
        "context": st.fixed_dictionaries({}, optional={"traits": traits}) | values,
        "integrations": values,
        "sentAt": stamps,
    },
)
requests = st.one_of(
    messages.map(lambda m: (f"/v1/{m['type']}", m)),
    messages.map(lambda m: (f"/v1/{m['type']}", m)),
    state_pressure.map(lambda m: ("/v1/identify", m)),
    batches.map(lambda b: ("/v1/batch", b)),
)


def with_contact(route: str, body: dict[str, Any], contact: str) -> tuple[str, dict[str, Any]]:
    return route, {**body, "userId": contact}


# The inputs of issue 15's findings, posted first every run.
KNOWN_HOSTILE: list[tuple[str, dict[str, Any]]] = [
    ("/v1/identify", {"userId": "known-nul", "traits": {"name": "a\x00b"}}),
    ("/v1/track", {"userId": "x" * 3000, "event": "Signed Up"}),
    (
        "/v1/track",
        {"userId": "known-9999", "event": "Signed Up", "timestamp": "9999-12-01T00:00:00Z"},
    ),
    (
        "/v1/track",
        {
            "userId": "known-year-1",
            "event": "Demo Requested",
            "timestamp": "0001-01-01T00:00:00Z",
            "sentAt": "9999-12-31T23:59:59Z",
        },
    ),
    (
        "/v1/identify",
        {"userId": "known-many", "traits": {"email": "a@x.example, b@y.example, c@z.example"}},
    ),
    (
        "/v1/track",
        {
            "userId": "known-crlf",
            "event": "Signed Up",
            "context": {"traits": {"email": "a@x.example\r\nBcc: b@y.example"}},
        },
    ),
    (
        "/v1/track",
        {
            "userId": "known-numbers",
            "event": "Signed Up",
            "properties": {"n": [1e308, -1e308, 5e-324, 2**63, -(2**63) - 1, 10**40]},
            "context": {"traits": {"email": "numbers@example.com", "age": 10**40}},
        },
    ),
    *[("/v1/identify", _big_traits("known-state", f"k{n:03d}", 26_000)) for n in range(42)],
    (
        "/v1/track",
        {
            "userId": "known-state",
            "event": "Signed Up",
            "context": {"traits": {"email": "state@example.com"}},
        },
    ),
]
