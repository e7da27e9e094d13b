"""Webhooks signed per Standard Webhooks; ``webhook-id`` is the follow-up id on every try."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp

from funnel_notifier.channels import Delivery, Outcome
from funnel_notifier.domain.backoff import is_final_status, parse_retry_after
from funnel_notifier.domain.rules import webhook_url_problem
from funnel_notifier.domain.signing import signature_headers

__all__ = ["RECORD_KEYS", "WebhookChannel", "webhook_body"]

USER_AGENT = "funnel-notifier/0.1"


# Where the triggering record goes in ``data``, by trigger type.
RECORD_KEYS = {"entered": "stageChange", "stalled": "stall", "merged": "merge"}


def webhook_body(delivery: Delivery) -> bytes:
    """The same bytes on every try: the triggering record, the follow-up id and the rule."""
    body = {
        "type": f"followup.{delivery.trigger}",
        "timestamp": delivery.record.get("eventTime"),
        "data": {
            "followupId": delivery.followup_id,
            "rule": {
                "id": delivery.rule_id,
                "trigger": delivery.trigger,
                "funnel": delivery.funnel,
                "stage": delivery.stage,
            },
            RECORD_KEYS.get(delivery.trigger, "record"): delivery.record,
        },
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


class WebhookChannel:
    def __init__(
        self,
        *,
        client: aiohttp.ClientSession,
        url: str,
        key: bytes,
        headers: dict[str, str],
        retry_after_cap_s: float,
        allowed_hosts: frozenset[str] = frozenset(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._url = url
        self._allowed_hosts = allowed_hosts
        self._key = key
        self._headers = headers
        self._retry_after_cap_s = retry_after_cap_s
        self._clock = clock

    async def deliver(self, delivery: Delivery, *, timeout_s: float) -> Outcome:
        # Checked again here, where it is used: only http(s), only the rule's hosts.
        problem = webhook_url_problem(self._url, hosts=self._allowed_hosts)
        if problem is not None:
            return Outcome(ok=False, final=True, error=problem)
        body = webhook_body(delivery)
        headers = {
            **self._headers,
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            **signature_headers(
                key=self._key,
                webhook_id=delivery.followup_id,
                timestamp=int(self._clock()),
                body=body,
            ),
        }
        try:
            # ``total`` bounds the whole attempt: waiting for a pooled connection,
            # connecting, sending and reading the answer.
            async with self._client.post(
                self._url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=False,
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    return Outcome(ok=True, status_code=status)
                text = (await response.read())[:200].decode("utf-8", "replace")
                retry_after_header = response.headers.get("retry-after")
        except TimeoutError:
            return Outcome(ok=False, error=f"no answer within {timeout_s:g}s")
        except aiohttp.ClientError as exc:
            return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}")
        retry_after = parse_retry_after(
            retry_after_header, now=datetime.now(UTC), cap_s=self._retry_after_cap_s
        )
        return Outcome(
            ok=False,
            final=is_final_status(status),
            error=f"HTTP {status}: {text}",
            status_code=status,
            retry_after_s=retry_after,
        )
