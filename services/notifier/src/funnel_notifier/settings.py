"""Notifier settings, from environment variables (prefix ``NOTIFIER_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["NotifierSettings"]


class NotifierSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8002
    group_id: str = Field(default="funnel-notifier", description="Kafka consumer group.")
    retry_backoff_s: float = Field(
        default=1.0, gt=0, description="Pause before retrying a batch the database refused."
    )
    rules_dir: Path | None = Field(
        default=None,
        description="Follow-up rule files, with templates/ inside. None: the shipped examples.",
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
    attempt_timeout_s: float = Field(default=10.0, gt=0, description="Per delivery attempt.")
    claim_grace_s: float = Field(
        default=5.0,
        ge=0,
        description=(
            "An attempt still in flight after timeout + grace belongs to a dead process;"
            " another dispatcher retries it (same webhook-id)."
        ),
    )
    max_attempts: int = Field(default=8, ge=1, description="Then the follow-up is dead.")
    backoff_base_s: float = Field(default=5.0, gt=0, description="First retry after ~this.")
    backoff_max_s: float = Field(default=3600.0, gt=0, description="Longest backoff.")
    retry_after_max_s: float = Field(
        default=86400.0, gt=0, description="Longest Retry-After honoured."
    )
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = Field(default=False, description="Upgrade the SMTP connection to TLS.")
    message_id_domain: str = Field(
        default="funnel.notifier", description="Right-hand side of e-mail Message-IDs."
    )
