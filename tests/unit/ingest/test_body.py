"""Body reading, inflation and JSON decoding: the bounds that keep ingest's memory flat."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import AsyncIterator

import pytest
from funnel_ingest.body import MAX_JSON_DEPTH, check_content_type, decode_json, inflate, read_body
from funnel_ingest.errors import IngestError


async def _chunks(*parts: bytes, consumed: list[int] | None = None) -> AsyncIterator[bytes]:
    for part in parts:
        if consumed is not None:
            consumed.append(len(part))
        yield part


async def test_body_under_the_limit_is_read_whole() -> None:
    assert await read_body(_chunks(b"ab", b"cd"), content_length="4", limit=4) == b"abcd"


async def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    consumed: list[int] = []
    with pytest.raises(IngestError) as caught:
        await read_body(_chunks(b"x" * 10, consumed=consumed), content_length="11", limit=10)
    assert caught.value.status == 413
    assert consumed == []


async def test_streamed_body_stops_being_read_once_past_the_limit() -> None:
    consumed: list[int] = []
    parts = [b"x" * 6] * 100
    with pytest.raises(IngestError) as caught:
        await read_body(_chunks(*parts, consumed=consumed), content_length=None, limit=10)
    assert caught.value.status == 413
    assert len(consumed) == 2  # Not the 100 chunks a client might keep sending.


def test_gzip_and_deflate_bodies_are_inflated() -> None:
    data = json.dumps({"userId": "u"}).encode()
    assert inflate(gzip.compress(data), content_encoding="gzip", limit=1000) == data
    assert inflate(zlib.compress(data), content_encoding="deflate", limit=1000) == data
    assert inflate(data, content_encoding=None, limit=1000) == data


def test_concatenated_gzip_members_are_all_inflated() -> None:
    body = gzip.compress(b'{"a": ') + gzip.compress(b"1}")
    assert inflate(body, content_encoding="gzip", limit=100) == b'{"a": 1}'


def test_gzip_bomb_is_refused_at_the_limit_not_inflated() -> None:
    bomb = gzip.compress(b"\0" * 50_000_000)  # 50 MB of zeros in about 50 KB.
    assert len(bomb) < 100_000
    with pytest.raises(IngestError) as caught:
        inflate(bomb, content_encoding="gzip", limit=500 * 1024)
    assert caught.value.status == 413
    assert "decompressed" in caught.value.message


@pytest.mark.parametrize(
    "body", [b"not gzip at all", gzip.compress(b'{"a": 1}')[:-12]], ids=["garbage", "truncated"]
)
def test_broken_gzip_gets_400(body: bytes) -> None:
    with pytest.raises(IngestError) as caught:
        inflate(body, content_encoding="gzip", limit=1000)
    assert (caught.value.status, caught.value.code) == (400, "bad_encoding")


def test_unknown_content_encoding_gets_415() -> None:
    with pytest.raises(IngestError) as caught:
        inflate(b"{}", content_encoding="br", limit=1000)
    assert caught.value.status == 415


@pytest.mark.parametrize(
    "content_type",
    [None, "", "application/json", "text/plain", "text/plain;charset=UTF-8", "application/x+json"],
)
def test_json_and_text_plain_content_types_are_accepted(content_type: str | None) -> None:
    check_content_type(content_type)


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"],
)
def test_other_content_types_get_415(content_type: str) -> None:
    with pytest.raises(IngestError) as caught:
        check_content_type(content_type)
    assert caught.value.status == 415


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"\xff\xfe{}", "invalid_utf8"),
        (b'{"a": "\xed\xa0\x80"}', "invalid_utf8"),  # A surrogate encoded as UTF-8 bytes.
        (b"{not json", "malformed_json"),
        (b'{"a": NaN}', "malformed_json"),
        (b'{"a": 1e999}', "malformed_json"),
        (b"[" * 100_000 + b"]" * 100_000, "malformed_json"),
        (b'{"a": ' + b"9" * 5000 + b"}", "malformed_json"),
        (b"", "malformed_json"),
    ],
    ids=["bom16", "utf8-surrogate", "syntax", "nan", "infinity", "deep", "huge-int", "empty"],
)
def test_bodies_that_are_not_strict_utf8_json_get_400(body: bytes, code: str) -> None:
    with pytest.raises(IngestError) as caught:
        decode_json(body)
    assert (caught.value.status, caught.value.code) == (400, code)


def test_json_nested_up_to_the_depth_limit_is_accepted_and_deeper_gets_400() -> None:
    def nested(depth: int) -> bytes:
        return b"[" * depth + b"]" * depth

    assert decode_json(nested(MAX_JSON_DEPTH)) is not None
    for depth in (MAX_JSON_DEPTH + 1, 900):  # 900: under Python's recursion limit when parsing.
        with pytest.raises(IngestError) as caught:
            decode_json(nested(depth))
        assert (caught.value.status, caught.value.code) == (400, "too_deep")


def test_depth_counts_nesting_not_brackets_in_wide_bodies_or_strings() -> None:
    wide = b'{"batch": [' + b",".join([b'{"p": {"a": [1]}, "t": "[[{{"}'] * 100) + b"]}"
    assert len(decode_json(wide)["batch"]) == 100
    deep_objects = b'{"a": ' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1)
    with pytest.raises(IngestError) as caught:
        decode_json(deep_objects)
    assert caught.value.code == "too_deep"


def test_unicode_edge_cases_decode_as_sent() -> None:
    body = '{"e": "🎉", "nul": "a\\u0000b", "lone": "\\ud800"}'.encode()
    assert decode_json(body) == {"e": "🎉", "nul": "a\0b", "lone": "\ud800"}


def test_a_raw_control_character_inside_a_string_is_not_json() -> None:
    with pytest.raises(IngestError) as caught:
        decode_json(b'{"a": "x\x00y"}')
    assert caught.value.code == "malformed_json"
