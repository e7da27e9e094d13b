"""``python -m funnel_shared.topics`` (the docker-compose init job's first step) as a process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from confluent_kafka.admin import AdminClient, ConfigResource
from funnel_shared.settings import TopicSettings

pytestmark = pytest.mark.integration


def _run_init(kafka_env: dict[str, str], extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **kafka_env, "KAFKA_PARTITIONS": "3", **extra}
    return subprocess.run(
        [sys.executable, "-m", "funnel_shared.topics"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    """The topic's configs as librdkafka reads them (aiokafka's DescribeConfigs version
    is one the embedded broker drops the connection on)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    [future] = admin.describe_configs([ConfigResource("topic", topic)]).values()
    return {name: entry.value for name, entry in future.result(timeout=30).items()}


async def _existing_topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_init_creates_every_topic_with_partitions_and_configs_and_reruns_cleanly(
    kafka_env: dict[str, str],
) -> None:
    suffix = uuid.uuid4().hex[:12]
    defaults = TopicSettings()
    names = {
        f"TOPIC_{field.upper()}": f"{getattr(defaults, field)}.init.{suffix}"
        for field in TopicSettings.model_fields
    }
    configs = {"KAFKA_TOPIC_MIN_INSYNC_REPLICAS": "1", "KAFKA_TOPIC_RETENTION_MS": "86400000"}

    first = await asyncio.to_thread(_run_init, kafka_env, {**names, **configs})
    assert first.returncode == 0, first.stderr
    again = await asyncio.to_thread(_run_init, kafka_env, {**names, **configs})
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("exists already") == len(names)

    bootstrap = kafka_env["KAFKA_BOOTSTRAP_SERVERS"]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(names.values()))
    finally:
        await admin.close()
    assert {d["topic"]: len(d["partitions"]) for d in described} == dict.fromkeys(names.values(), 3)
    config = await asyncio.to_thread(_topic_config, bootstrap, names["TOPIC_CONTACT_EVENTS"])
    assert (config["min.insync.replicas"], config["retention.ms"]) == ("1", "86400000")


async def test_init_refuses_more_insync_replicas_than_replicas_and_creates_nothing(
    kafka_env: dict[str, str],
) -> None:
    topic = f"funnel.contact-events.v1.refused.{uuid.uuid4().hex[:12]}"
    result = await asyncio.to_thread(
        _run_init,
        kafka_env,
        {
            "TOPIC_CONTACT_EVENTS": topic,
            "KAFKA_REPLICATION_FACTOR": "1",
            "KAFKA_TOPIC_MIN_INSYNC_REPLICAS": "2",
        },
    )
    assert result.returncode == 1
    assert "every write would fail" in result.stderr
    assert "Traceback" not in result.stderr
    assert topic not in await _existing_topics(kafka_env["KAFKA_BOOTSTRAP_SERVERS"])
