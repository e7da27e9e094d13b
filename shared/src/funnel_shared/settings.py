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
        default="127.0.0.1:9092",
        description="The broker's addresses: a comma-separated host:port list.",
    )
    client_id: str = Field(default="funnel", description="Client id prefix seen by the broker.")
    enable_idempotence: bool = Field(
        default=True,
        description=(
            "Idempotent producer: no duplicates from retries. Keep it on for Apache Kafka;"
            " turn it off for the embedded broker, which refuses it."
        ),
    )
    producer_max_batch_size: int = Field(
        default=16384,
        ge=1,
        description=(
            "Producer batch size in bytes (16384 is aiokafka's and Kafka's default). 1 means"
            " one record per batch, which the embedded broker needs for correct end offsets"
            " (and so for the stage engine's table recovery); it caps a producer at about one"
            " record per partition per round trip."
        ),
    )
    producer_linger_ms: int = Field(
        default=0, ge=0, description="How long a producer waits to fill a batch before sending."
    )
    request_timeout_ms: int = Field(
        default=30000, ge=1000, description="How long a client waits for any broker answer."
    )
    session_timeout_ms: int = Field(
        default=10000,
        ge=1000,
        description=(
            "Consumer group session timeout: a member silent this long is dropped. On the"
            " embedded broker the first member of a group waits about half of it to join."
        ),
    )
    heartbeat_interval_ms: int = Field(
        default=3000, ge=100, description="How often a consumer tells its group it is alive."
    )
    fetch_max_wait_ms: int = Field(
        default=500,
        ge=0,
        description=(
            "Longest time a fetch waits for new records, for every consumer: the notifier's,"
            " the projection's and the stage engine's faust consumer (whose own default of"
            " 1500 the stage engine overrides with this). The embedded broker does not wake a"
            " waiting fetch, so there it is the latency of every quiet hop: keep it small."
        ),
    )
    replication_factor: int = Field(
        default=1,
        ge=1,
        description=(
            "Replication factor of the topics we create, the stage engine's changelog and"
            " command topics included. Production: 3."
        ),
    )
    partitions: int = Field(
        default=6,
        ge=1,
        description=(
            "Partitions of the topics we create: the most replicas of a consumer that can"
            " share the work. Also the stage engine's table partitions: keep them equal."
        ),
    )


class TopicSettings(BaseSettings):
    """Topic names. The defaults are the contracts in SPEC.md."""

    model_config = SettingsConfigDict(env_prefix="TOPIC_", extra="ignore")

    contact_events: str = Field(
        default="funnel.contact-events.v1",
        description="Contact events: ingest writes them, the stage engine reads them.",
    )
    stage_changed: str = Field(
        default="funnel.stage-changed.v1",
        description=(
            "The stage engine's outputs (stage changes, refused skips, merges, stalls):"
            " read by its projection, the notifier and downstream consumers."
        ),
    )
    followups: str = Field(
        default="funnel.followups.v1",
        description="Every state change of a follow-up, published by the notifier.",
    )
    rejected: str = Field(
        default="funnel.rejected.v1",
        description="Dead letters from every service, with the reason and the original.",
    )

    def all(self) -> list[str]:
        return [self.contact_events, self.stage_changed, self.followups, self.rejected]


class DatabaseSettings(BaseSettings):
    """PostgreSQL connection, as a ``postgresql://`` URL."""

    model_config = SettingsConfigDict(extra="ignore")

    database_url: SecretStr = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:5432/funnel"),
        description=(
            "postgresql://user:password@host:port/database. The notifier's follow-ups and the"
            " stage engine's projection (read API, funnel pages). Unset: user postgres on"
            " 127.0.0.1:5432, database funnel."
        ),
    )

    @property
    def dsn(self) -> str:
        """The URL for asyncpg (plain ``postgresql://``)."""
        url = self.database_url.get_secret_value()
        return url.replace("postgresql+asyncpg://", "postgresql://", 1)
