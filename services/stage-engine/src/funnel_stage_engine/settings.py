"""Stage-engine settings, from environment variables (prefix ``STAGE_ENGINE_``)."""

from __future__ import annotations

from pathlib import Path

from funnel_shared.auth import TOKENS_HELP, TokenList
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from funnel_stage_engine.domain.limits import StateLimits

__all__ = ["StageEngineSettings"]

STORES = ("memory://", "rocksdb://")


class StageEngineSettings(BaseSettings):
    # A refused value is not echoed in the error: it may be a token.
    model_config = SettingsConfigDict(
        env_prefix="STAGE_ENGINE_", extra="ignore", hide_input_in_errors=True
    )

    app_id: str = Field(
        default="funnel-stage-engine",
        description="Faust app id: the consumer group and the prefix of its internal topics.",
    )
    host: str = Field(
        default="127.0.0.1",
        description=(
            "Address the HTTP server listens on. Without api_tokens only a loopback address"
            " is allowed."
        ),
    )
    port: int = Field(
        default=8001, description="Port of the read API, the funnel pages and /metrics."
    )
    api_tokens: TokenList = Field(
        default_factory=list,
        description="Tokens for the read API and the funnel pages. " + TOKENS_HELP,
    )
    metrics_require_token: bool = Field(
        default=True,
        description=(
            "Whether /metrics needs a token too (when tokens are set): it holds no contact"
            " data but shows volumes. Prometheus sends one with authorization.credentials."
        ),
    )
    data_dir: Path = Field(
        default=Path(".funnel-data/stage-engine"),
        description="Faust's local data directory (the RocksDB files live here).",
    )
    funnels_dir: Path | None = Field(
        default=None,
        description=(
            "Directory of funnel definition files (*.yaml, *.yml), validated at start; it"
            " replaces the built-ins. Unset: the built-in funnels."
        ),
    )
    store: str = Field(
        default="rocksdb://",
        description=(
            "Where the contact-state table lives between restarts: rocksdb:// keeps it on"
            " disk in data_dir and replays only the changelog tail; memory:// rebuilds it"
            " from the whole changelog topic at every start (the dev stack uses it, as the"
            " embedded broker forgets its topics on restart)."
        ),
    )
    commit_interval_s: float = Field(
        default=2.8,
        gt=0,
        description="How often consumed offsets of fully processed events are committed.",
    )
    batch_max_events: int = Field(
        default=500,
        ge=1,
        description=(
            "At most this many records (those already waiting; a batch never waits to fill"
            " up) are evaluated, published with their acks awaited together, then stored."
        ),
    )
    state_write_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description=(
            "A batch's contact states must be acknowledged by the broker (changelog, acks=all)"
            " within this many seconds before its records are committed; otherwise the"
            " worker stops (non-zero exit) and the records are processed again after the"
            " restart. Keep it above KAFKA_REQUEST_TIMEOUT_MS."
        ),
    )
    held_batch_watch_s: float = Field(
        default=0.5,
        gt=0,
        description=(
            "A batch the agent has held this long without adding a record (its queue was"
            " emptied under it, as faust does when a rebalance starts) is processed without"
            " waiting for more, so a rebalance cannot hang on it."
        ),
    )
    agent_stall_after_s: float = Field(
        default=180.0,
        gt=0,
        description=(
            "With records waiting, this long without a finished batch makes /healthz answer"
            " 503 (so an orchestrator restarts the worker) and sets"
            " funnel_stage_engine_agent_stalled. Keep it above state_write_timeout_s plus"
            " KAFKA_REQUEST_TIMEOUT_MS."
        ),
    )

    stall_check_interval_s: float = Field(
        default=1.0, gt=0, description="How often due stall deadlines are looked for."
    )
    idle_partition_after_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "A partition with no events for this long advances its event time with the"
            " wall clock (minus idle_lateness_s) instead of its latest event time."
        ),
    )
    idle_lateness_s: float = Field(
        default=5.0,
        ge=0,
        description="How far behind the wall clock an idle partition's event time stays.",
    )

    stall_clock_tolerance_s: float = Field(
        default=60.0,
        ge=0,
        description=(
            "How far past the wall clock an event's time may move a partition's stall clock."
            " An event dated later (a client's clock, or a hostile timestamp) moves it only"
            " this far: stalls fire from real time."
        ),
    )

    max_traits: int = Field(
        default=200,
        ge=1,
        description=(
            "Most traits one contact keeps. An event that would give a contact more is"
            " dead-lettered (state_limit); the contact keeps its last good state."
        ),
    )
    max_traits_bytes: int = Field(
        default=32_768,
        ge=1024,
        description=(
            "Most bytes one contact's traits take as JSON. An event that would take a"
            " contact past it is dead-lettered (state_limit); the contact keeps its last"
            " good state."
        ),
    )
    dedupe_window: int = Field(
        default=200,
        ge=1,
        description=(
            "How many recent messageIds (and merge ids) a contact remembers: a duplicate"
            " within them changes nothing. The newest are kept."
        ),
    )
    dedupe_window_bytes: int = Field(
        default=16_384,
        ge=1024,
        description=(
            "Most bytes the remembered messageIds of one contact take; the newest that fit"
            " (and at most dedupe_window of them) are kept."
        ),
    )
    max_id_chars: int = Field(
        default=255,
        ge=36,
        description=(
            "Longest messageId, userId, anonymousId or previousId the engine accepts (as"
            " ingest); an event with a longer one is dead-lettered (id_too_long)."
        ),
    )
    max_record_bytes: int = Field(
        default=1_000_000,
        ge=65_536,
        description=(
            "Largest record the worker sends (a stage change, a command, a contact's state"
            " in the table's changelog), measured as the producer does. An event that would"
            " produce a larger one is dead-lettered (too_large) instead of failing the"
            " producer. Keep it at most faust's producer_max_request_size (1,000,000) and"
            " the broker's message.max.bytes (about 1 MB on Apache Kafka)."
        ),
    )

    def state_limits(self) -> StateLimits:
        """The per-contact bounds, for the domain."""
        return StateLimits(
            max_traits=self.max_traits,
            max_traits_bytes=self.max_traits_bytes,
            dedupe_window=self.dedupe_window,
            dedupe_window_bytes=self.dedupe_window_bytes,
            max_id_chars=self.max_id_chars,
        )

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        if not value.startswith(STORES):
            raise ValueError(f"must start with one of {', '.join(STORES)}")
        return value
