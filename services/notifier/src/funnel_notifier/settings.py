"""Notifier settings, from environment variables (prefix ``NOTIFIER_``)."""

from __future__ import annotations

from pathlib import Path

from funnel_shared.auth import TOKENS_HELP, TokenList
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["NotifierSettings"]


class NotifierSettings(BaseSettings):
    # A refused value is not echoed in the error: it may be a token.
    model_config = SettingsConfigDict(
        env_prefix="NOTIFIER_", extra="ignore", hide_input_in_errors=True
    )

    host: str = Field(
        default="127.0.0.1",
        description=(
            "Address the admin API listens on. Without api_tokens only a loopback address"
            " is allowed."
        ),
    )
    port: int = Field(default=8002, description="Port of the admin API and /metrics.")
    api_tokens: TokenList = Field(
        default_factory=list, description="Tokens for the admin API. " + TOKENS_HELP
    )
    metrics_require_token: bool = Field(
        default=True,
        description=(
            "Whether /metrics needs a token too (when tokens are set): it holds no contact"
            " data but shows volumes. Prometheus sends one with authorization.credentials."
        ),
    )
    group_id: str = Field(
        default="funnel-notifier", description="Kafka consumer group of the stage-changed topic."
    )
    retry_backoff_s: float = Field(
        default=1.0,
        gt=0,
        description=(
            "Pause before re-reading records that could not be stored because the database"
            " is down or read-only (records it refuses for their content are dead-lettered)."
        ),
    )
    revoke_wait_s: float = Field(
        default=10.0,
        gt=0,
        description=(
            "On a rebalance, how long to wait for the batch being stored before letting the"
            " partitions go (then its records are re-read by their next owner, harmlessly)."
        ),
    )
    rules_dir: Path | None = Field(
        default=None,
        description=(
            "Directory of follow-up rule files, with templates/ inside. Unset: the shipped"
            " examples."
        ),
    )
    poll_interval_s: float = Field(
        default=1.0,
        gt=0,
        description=(
            "Longest dispatcher sleep; it also wakes when follow-ups are stored and when"
            " the next one is due."
        ),
    )
    batch_size: int = Field(
        default=20, ge=1, description="Follow-ups one dispatcher takes at once."
    )
    startup_catch_up_max_s: float = Field(
        default=60.0,
        ge=0,
        description=(
            "At start-up the dispatcher waits until the backlog of stage changes that was on"
            " Kafka has been stored (so a later change can still cancel a follow-up), at"
            " most this long. 0: no wait."
        ),
    )
    attempt_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Bounds a whole delivery attempt (connect, send, read the answer).",
    )
    claim_grace_s: float = Field(
        default=5.0,
        ge=0,
        description=(
            "An attempt still in flight after timeout + grace belongs to a dead process;"
            " another dispatcher retries it (same webhook-id)."
        ),
    )
    max_attempts: int = Field(default=8, ge=1, description="Then the follow-up is dead.")
    backoff_base_s: float = Field(
        default=5.0,
        gt=0,
        description="First retry after about this; it doubles per attempt, with jitter.",
    )
    backoff_max_s: float = Field(
        default=3600.0, gt=0, description="Longest backoff between attempts."
    )
    retry_after_max_s: float = Field(
        default=86400.0, gt=0, description="Longest Retry-After honoured."
    )
    smtp_host: str = Field(default="127.0.0.1", description="SMTP server for e-mail follow-ups.")
    smtp_port: int = Field(default=25, description="SMTP port (make dev: its sink on 1025).")
    smtp_username: str | None = Field(default=None, description="SMTP login. Unset: none.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_starttls: bool = Field(default=False, description="Upgrade the SMTP connection to TLS.")
    message_id_domain: str = Field(
        default="funnel.notifier",
        description="Right-hand side of e-mail Message-IDs: <follow-up id@this>.",
    )
