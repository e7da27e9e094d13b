"""The three services as real processes, on free ports, against the test broker and database.

One running system per test module: starting it (three processes and their
group joins) costs far more than the checks that use it. The tests of a module
share its topics and database, so each one uses its own contacts and looks only
at their records.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from funnel_devstack.processes import free_port, stop_process
from funnel_devstack.services import ServiceSpec, service_specs, wait_until_ready
from funnel_shared.settings import KafkaSettings

from tests.conftest import create_topics, migrated_copy, topic_environment
from tests.support.access import token_env
from tests.support.notifier_processes import NotifierProcesses, notifier_environment
from tests.support.processes import log_tail, start_logged

WRITE_KEY = "wk-e2e"


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[NotifierProcesses]:
    """Notifier processes a test starts; stopped (if still alive) when it ends."""
    started = NotifierProcesses(tmp_path / "logs")
    yield started
    started.stop_all()


@dataclass(frozen=True)
class RunningSystem:
    urls: dict[str, str]
    database_url: str
    bootstrap_servers: str
    logs: Path
    topics: dict[str, str]  # TOPIC_* -> this system's topic
    # Starts the services run_system was told to defer, and waits until they are ready.
    start_deferred: Callable[[], None] = field(default=lambda: None)


def _log_tail(logs: Path) -> str:
    return "\n".join(log_tail(path, 3000) for path in sorted(logs.glob("*.log")))


@pytest.fixture(scope="module")
async def system_topics(kafka_settings: KafkaSettings) -> dict[str, str]:
    return topic_environment(await create_topics(kafka_settings))


@pytest.fixture(scope="module")
async def system_database(postgres_admin_dsn: str) -> str:
    """One database for both services' tables, as in production."""
    return await migrated_copy(postgres_admin_dsn, "funnel-notifier", "funnel-stage-engine")


@pytest.fixture(scope="module")
def running_system(
    kafka_env: dict[str, str],
    system_topics: dict[str, str],
    system_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningSystem]:
    yield from run_system(
        kafka_env, system_topics, system_database, tmp_path_factory.mktemp("system")
    )


def run_system(
    kafka_env: dict[str, str],
    topic_env: dict[str, str],
    database_url: str,
    tmp_path: Path,
    *,
    write_keys: dict[str, Any] | None = None,
    deferred: Collection[str] = (),
    **env: str,
) -> Iterator[RunningSystem]:
    """Start the three services (``env`` adds settings), yield them, stop them.

    The services named in ``deferred`` start only when the test calls
    ``start_deferred`` (e.g. the notifier once the stage changes it should find are on
    Kafka)."""
    suffix = uuid.uuid4().hex[:12]
    base_env = {
        **kafka_env,
        **topic_env,
        "DATABASE_URL": database_url,
        "STAGE_ENGINE_APP_ID": f"e2e-stage-engine-{suffix}",
        "NOTIFIER_GROUP_ID": f"e2e-notifier-{suffix}",
        **token_env(),  # The read API, the pages and the admin API require a token.
        **env,
    }
    specs = service_specs(
        base_env=base_env,
        ingest_port=free_port(),
        stage_engine_port=free_port(),
        notifier_port=free_port(),
        data_dir=tmp_path,
        write_keys=write_keys or {"e2e": WRITE_KEY},
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    processes: list[subprocess.Popen[bytes]] = []

    def start(group: list[ServiceSpec]) -> None:
        started = [_start(spec, logs) for spec in group]
        processes.extend(started)
        try:
            wait_until_ready(group, started, timeout_s=120)
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(f"{exc}\n{_log_tail(logs)}")

    try:
        start([spec for spec in specs if spec.name not in deferred])
        yield RunningSystem(
            urls={spec.name: spec.url for spec in specs},
            database_url=database_url,
            bootstrap_servers=kafka_env["KAFKA_BOOTSTRAP_SERVERS"],
            logs=logs,
            topics=topic_env,
            start_deferred=lambda: start([spec for spec in specs if spec.name in deferred]),
        )
    finally:
        for process in processes:
            stop_process(process, timeout_s=20)


def _start(spec: ServiceSpec, logs: Path) -> subprocess.Popen[bytes]:
    return start_logged(
        spec.argv, env=spec.env, log_path=logs / f"{spec.name}.log", cwd=logs.parent
    )


NotifierEnv = Callable[..., Awaitable[dict[str, str]]]


@pytest.fixture
def notifier_env_for(
    kafka_env: dict[str, str], topic_env: dict[str, str], postgres_admin_dsn: str, tmp_path: Path
) -> NotifierEnv:
    """``await notifier_env_for(RULES, NOTIFIER_BATCH_SIZE="3")``: a notifier process's
    environment on this test's topics, with a migrated database of its own and these rules."""

    async def build(rules: str, **settings: str) -> dict[str, str]:
        base = {**kafka_env, **topic_env}
        return await notifier_environment(
            base, postgres_admin_dsn, tmp_path / "rules", rules, **settings
        )

    return build
