"""Typed settings shared by every service, read from environment variables.

Build them in ``main()`` or a lifespan, never at import time, so that tests
and the dev stack can point each process at its own broker, database and
topics.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DatabaseSettings", "KafkaSettings", "TopicSettings"]


class KafkaSettings(BaseSettings):
    """How to reach the Kafka-protocol broker, and how to talk to it.

    The defaults suit Apache Kafka. The embedded broker (Tansu) needs a few of
    them changed; the dev stack and the test fixtures set those through the
    same environment variables, so there is no separate code path.
    """

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated host:port list."
    )
    client_id: str = Field(default="funnel", description="Client id prefix seen by the broker.")
    enable_idempotence: bool = Field(
        default=True,
        description="Idempotent producer. Turn off for the embedded broker, which refuses it.",
    )
    producer_max_batch_size: int = Field(
        default=16384,
        ge=1,
        description=(
            "Producer batch size in bytes. 1 means one record per batch, which the"
            " embedded broker needs for correct end offsets."
        ),
    )
    producer_linger_ms: int = Field(default=0, ge=0)
    request_timeout_ms: int = Field(default=30000, ge=1000)
    session_timeout_ms: int = Field(default=10000, ge=1000)
    heartbeat_interval_ms: int = Field(default=3000, ge=100)
    fetch_max_wait_ms: int = Field(
        default=500,
        ge=0,
        description="Long-poll wait. The embedded broker does not wake a waiting fetch.",
    )
    replication_factor: int = Field(default=1, ge=1, description="For topics we create.")
    partitions: int = Field(default=6, ge=1, description="For topics we create.")


class TopicSettings(BaseSettings):
    """Topic names. The defaults are the contracts in SPEC.md."""

    model_config = SettingsConfigDict(env_prefix="TOPIC_", extra="ignore")

    contact_events: str = "funnel.contact-events.v1"
    stage_changed: str = "funnel.stage-changed.v1"
    followups: str = "funnel.followups.v1"
    rejected: str = "funnel.rejected.v1"

    def all(self) -> list[str]:
        return [self.contact_events, self.stage_changed, self.followups, self.rejected]


class DatabaseSettings(BaseSettings):
    """PostgreSQL connection, as a ``postgresql://`` URL."""

    model_config = SettingsConfigDict(extra="ignore")

    database_url: SecretStr = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:5432/funnel"),
        description="postgresql://user:password@host:port/database",
    )

    @property
    def dsn(self) -> str:
        """The URL for asyncpg (plain ``postgresql://``)."""
        url = self.database_url.get_secret_value()
        return url.replace("postgresql+asyncpg://", "postgresql://", 1)
