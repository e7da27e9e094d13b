"""Backoff, Retry-After, final statuses and Standard Webhooks signatures: pure functions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from funnel_notifier.channels import Delivery
from funnel_notifier.channels.webhook import webhook_body
from funnel_notifier.domain.backoff import is_final_status, next_delay_s, parse_retry_after
from funnel_notifier.domain.signing import decode_secret, signature_headers
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook, WebhookVerificationError

from tests.support.notifier_support import new_secret

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@given(
    attempt=st.integers(min_value=1, max_value=60),
    draw=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_backoff_stays_within_half_and_all_of_a_capped_doubling_window(
    attempt: int, draw: float
) -> None:
    window = min(60.0, 0.5 * 2 ** (attempt - 1))
    delay = next_delay_s(attempt=attempt, base_s=0.5, cap_s=60.0, draw=draw)
    assert window / 2 <= delay <= window


def test_backoff_grows_until_the_cap() -> None:
    delays = [next_delay_s(attempt=n, base_s=1, cap_s=8, draw=0.999) for n in range(1, 7)]
    assert delays == sorted(delays)
    assert delays[-1] == pytest.approx(8, rel=0.01)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("Mon, 23 Nov 2026 12:00:30 GMT", 30.0),
        ("Mon, 23 Nov 2026 11:00:00 GMT", 0.0),
        ("999999", 3600.0),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_in_seconds_or_as_a_date(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=NOW, cap_s=3600) == expected


@pytest.mark.parametrize(
    ("status", "final"),
    [(400, True), (404, True), (410, True), (408, False), (429, False), (500, False), (503, False)],
)
def test_only_4xx_other_than_408_and_429_is_final(status: int, final: bool) -> None:
    assert is_final_status(status) is final


def _delivery() -> Delivery:
    return Delivery(
        followup_id="3f0b6a8e-0000-4000-8000-000000000001",
        rule_id="crm",
        trigger="entered",
        funnel="hourglass",
        contact_id="c1",
        stage="closed",
        stage_change_id="sc1",
        record={"id": "sc1", "eventTime": "2026-11-23T12:00:00Z", "traits": {"name": "Zoë"}},
    )


def test_our_signature_verifies_with_the_reference_implementation_and_a_tamper_does_not() -> None:
    secret = new_secret()
    body = webhook_body(_delivery())
    timestamp = int(datetime.now(UTC).timestamp())
    headers = signature_headers(
        key=decode_secret(secret), webhook_id="msg_1", timestamp=timestamp, body=body
    )
    assert Webhook(secret).verify(body, headers)["data"]["followupId"] == _delivery().followup_id
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"closed", b"lost"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_the_body_is_the_same_bytes_on_every_try() -> None:
    assert webhook_body(_delivery()) == webhook_body(_delivery())
    body = json.loads(webhook_body(_delivery()))
    assert body["type"] == "followup.entered"
    assert body["data"]["stageChange"]["traits"] == {"name": "Zoë"}


@pytest.mark.parametrize(
    ("secret", "problem"),
    [("abc", "whsec_<base64>"), ("whsec_!!!", "not valid base64"), ("whsec_YWJj", "too short")],
)
def test_a_malformed_secret_is_refused_without_echoing_it(secret: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        decode_secret(secret)
    assert secret.removeprefix("whsec_") not in str(caught.value)
