"""Ingest settings, from environment variables (prefix ``INGEST_``)."""

from __future__ import annotations

import hmac
import json
from datetime import timedelta
from functools import cached_property
from typing import Annotated, Any

from funnel_shared.events import SourceKind
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from funnel_ingest.limits import MessageLimits

__all__ = ["IngestSettings", "WriteKey"]


class WriteKey(BaseModel):
    """One source's write key and its kind. A bare string is a key of kind ``browser``:
    a key nobody marked secret must be assumed public."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    key: SecretStr = Field(min_length=1)
    kind: SourceKind = "browser"

    @classmethod
    def _from_plain(cls, value: Any) -> Any:
        if isinstance(value, str | SecretStr):
            return {"key": value}
        return value


def _list_from_env(value: Any) -> Any:
    """Accept a JSON list or a comma-separated string, as people write both."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class IngestSettings(BaseSettings):
    # A refused value is not echoed in the error: it may hold a write key.
    model_config = SettingsConfigDict(
        env_prefix="INGEST_", extra="ignore", hide_input_in_errors=True
    )

    host: str = Field(default="127.0.0.1", description="Address the HTTP server listens on.")
    port: int = Field(default=8000, description="Port of the HTTP server.")
    write_keys: dict[str, Annotated[WriteKey, BeforeValidator(WriteKey._from_plain)]] = Field(
        default_factory=dict,
        description=(
            "JSON object mapping each source name to its write key and the key's kind,"
            " browser (public, the default) or server (secret), e.g. INGEST_WRITE_KEYS="
            '\'{"website": "wk_live_...", "shop": {"key": "sk_live_...", "kind": "server"}}\'.'
            " Every event"
            " carries its source and kind; funnel rules can require a server source. No keys:"
            " every request gets 401."
        ),
    )
    produce_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="How long to wait for the broker's ack, then answer 503 with Retry-After.",
    )
    retry_after_s: int = Field(
        default=5, ge=1, description="Retry-After (seconds) sent with a 503."
    )
    max_message_bytes: int = Field(
        default=32 * 1024,
        ge=1,
        description="Largest single message, as JSON (Segment: 32 KB); beyond it, 413.",
    )
    max_request_bytes: int = Field(
        default=500 * 1024,
        ge=1,
        description=(
            "Largest request body, both as sent and after gzip (Segment: 500 KB); beyond it, 413."
        ),
    )
    max_batch_messages: int = Field(
        default=2500,
        ge=1,
        description="Most messages in one batch (Segment: 2,500); beyond it, 413.",
    )
    max_batch_merged_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=1,
        description=(
            "Largest total of a batch's messages once the batch-level context and integrations"
            " are merged into each (measured without building them); beyond it, 413."
        ),
    )
    max_id_chars: int = Field(
        default=255,
        ge=1,
        description=(
            "Longest userId, anonymousId, messageId, groupId or previousId, in characters;"
            " beyond it (or with a control character), 400 naming the field."
        ),
    )
    future_tolerance_s: float = Field(
        default=300.0,
        ge=0,
        description=(
            "How far past receivedAt an event time (after clock-skew correction) is believed;"
            " a later one becomes receivedAt, the client's own time kept in originalTimestamp."
        ),
    )
    thread_parse_bytes: int = Field(
        default=64 * 1024,
        ge=0,
        description=(
            "Bodies at least this large are parsed and validated in a worker thread, so that"
            " the event loop keeps answering other requests meanwhile."
        ),
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["*"],
        description="Origins allowed to post from a browser: '*' or a comma-separated list.",
    )
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        default_factory=list,
        description=(
            "Addresses or CIDRs of proxies whose X-Forwarded-For is believed. Empty: the"
            " peer address is the client address."
        ),
    )
    rate_limit: str | None = Field(
        default=None,
        description=(
            "Requests allowed per write key, e.g. '100/second' or '1000 per minute'"
            " (a moving window, per replica); beyond it, 429. Unset: no limit."
        ),
    )
    public_url: str | None = Field(
        default=None,
        description=(
            "The URL browsers reach ingest at (e.g. https://track.example.com), used in the"
            " analytics.js settings document. Unset: taken from each request."
        ),
    )

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        return _list_from_env(value)

    @field_validator("rate_limit")
    @classmethod
    def _parse_rate_limit(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from limits import parse

        parse(value)  # Raises ValueError with a readable message.
        return value

    @cached_property
    def message_limits(self) -> MessageLimits:
        return MessageLimits(
            max_id_chars=self.max_id_chars,
            future_tolerance=timedelta(seconds=self.future_tolerance_s),
        )

    def source_for_key(self, write_key: str) -> str | None:
        """The source a write key belongs to. Compared in constant time, every key."""
        presented = write_key.encode("utf-8", "surrogatepass")
        found = None
        for source, key in self.write_keys.items():
            if hmac.compare_digest(
                key.key.get_secret_value().encode("utf-8", "surrogatepass"), presented
            ):
                found = source
        return found

    def source_kind(self, source: str) -> SourceKind:
        """The kind of a source's write key (``browser`` for one this does not know)."""
        key = self.write_keys.get(source)
        return "browser" if key is None else key.kind
