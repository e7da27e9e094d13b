"""``python -m funnel_shared.topics``: create Funnel's topics before any service starts.

The docker-compose init job runs this. Partitions and the replication factor
come from ``KAFKA_PARTITIONS`` and ``KAFKA_REPLICATION_FACTOR`` (the settings
the services use too); the topic configs from the ``KAFKA_TOPIC_*`` settings
below. Topics that already exist are left as they are: change those with
``kafka-configs.sh`` (see deploy/README.md).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from funnel_shared.kafka import TopicCreationError, ensure_topics
from funnel_shared.settings import KafkaSettings, TopicSettings

__all__ = ["TopicConfigSettings", "main", "topic_configs"]

log = logging.getLogger("funnel.topics")


class TopicConfigSettings(BaseSettings):
    """Per-topic configs for the topics we create. Unset: the broker's default."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_TOPIC_", extra="ignore")

    min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        description=(
            "min.insync.replicas: with acks=all, a write succeeds only once this many"
            " replicas have it. Production: 2 with a replication factor of 3."
        ),
    )
    retention_ms: int | None = Field(
        default=None,
        ge=-1,
        description="retention.ms: how long records are kept; -1 keeps them forever.",
    )


def topic_configs(kafka: KafkaSettings, settings: TopicConfigSettings) -> dict[str, str]:
    """The broker configs for new topics. Refuses a combination no write could meet."""
    configs: dict[str, str] = {}
    if settings.min_insync_replicas is not None:
        if settings.min_insync_replicas > kafka.replication_factor:
            # Kafka accepts such a topic, then refuses every acks=all write to it.
            raise ValueError(
                f"KAFKA_TOPIC_MIN_INSYNC_REPLICAS={settings.min_insync_replicas} is more than"
                f" KAFKA_REPLICATION_FACTOR={kafka.replication_factor}: every write would fail"
            )
        configs["min.insync.replicas"] = str(settings.min_insync_replicas)
    if settings.retention_ms is not None:
        configs["retention.ms"] = str(settings.retention_ms)
    return configs


async def create_topics(
    kafka: KafkaSettings, topics: TopicSettings, settings: TopicConfigSettings
) -> list[str]:
    configs = topic_configs(kafka, settings)
    names = topics.all()
    created = await ensure_topics(kafka, names, configs=configs, timeout_s=60.0)
    for name in names:
        if name in created:
            log.info(
                "created %s: %d partitions, replication factor %d, configs %s",
                name,
                kafka.partitions,
                kafka.replication_factor,
                configs or "broker defaults",
            )
        else:
            log.info("%s exists already: left unchanged", name)
    return created


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(create_topics(KafkaSettings(), TopicSettings(), TopicConfigSettings()))
    except (ValueError, TopicCreationError) as exc:
        print(f"funnel topics: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
