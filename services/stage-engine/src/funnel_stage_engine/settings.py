"""Stage-engine settings, from environment variables (prefix ``STAGE_ENGINE_``)."""

from __future__ import annotations

from pathlib import Path

from funnel_shared.auth import TOKENS_HELP, TokenList
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        if not value.startswith(STORES):
            raise ValueError(f"must start with one of {', '.join(STORES)}")
        return value
