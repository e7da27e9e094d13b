"""The notifier benchmark's parts: a database, a rules directory, the receiver, the records.

The database is ``DATABASE_URL``'s server (a fresh database on it) when set,
else an embedded PostgreSQL started here, with fsync off like the tests'.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil
from aiokafka import AIOKafkaProducer
from funnel_devstack.postgres import EmbeddedPostgres
from funnel_devstack.processes import free_port
from funnel_notifier.domain.rules import builtin_rules_dir
from funnel_notifier.domain.signing import decode_secret, signature_headers
from funnel_shared.events import StageChanged
from funnel_shared.kafka import encode_model, producer_kwargs
from funnel_shared.settings import KafkaSettings

from funnel_bench.procs import Service, venv_python

__all__ = [
    "DELAY",
    "RULES",
    "Database",
    "Receiver",
    "database",
    "new_secret",
    "produce_changes",
    "send_signed",
    "tree_cpu_seconds",
    "write_rules",
]

DELAY = 2.0  # seconds: the ``after`` of the delayed rule below
RULES = """
funnel: lifecycle
rules:
  - id: bench.now
    trigger: entered
    stage: lead
    action: {type: webhook, url_env: BENCH_HOOK_URL, secret_env: BENCH_HOOK_SECRET}
  - id: bench.later
    trigger: entered
    stage: prospect
    after: 2s
    action: {type: webhook, url_env: BENCH_HOOK_URL, secret_env: BENCH_HOOK_SECRET}
"""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def write_rules(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bench.yaml").write_text(RULES)
    shutil.copytree(builtin_rules_dir() / "templates", directory / "templates", dirs_exist_ok=True)
    return directory


class Database:
    def __init__(self, url: str, pid: int | None) -> None:
        self.url = url
        self.pid = pid  # The embedded server's postmaster; None for DATABASE_URL's.


@asynccontextmanager
async def database(workdir: Path) -> AsyncIterator[Database]:
    if "DATABASE_URL" in os.environ:
        admin = os.environ["DATABASE_URL"]
        name = "bench_" + uuid.uuid4().hex[:10]
        await _create_database(admin, name)
        yield Database(f"{admin.rpartition('/')[0]}/{name}", None)
        return
    with EmbeddedPostgres(data_dir=workdir / "postgres", port=free_port(), durable=False) as pg:
        process = pg._process  # Its pid, to measure the server's CPU.
        yield Database(pg.dsn(), process.pid if process else None)


async def _create_database(admin: str, name: str) -> None:
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a server and its live children (PostgreSQL's backends are children)."""
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


class Receiver:
    """The webhook receiver process (``funnel_bench.webhook_receiver``)."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        argv = [venv_python(), "-m", "funnel_bench.webhook_receiver", "--port", str(self.port)]
        self.service = Service("webhook-receiver", argv, env={}, log_dir=log_dir)
        self.service.wait_http(f"{self.base}/healthz", timeout_s=60)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/hook"

    def stats(self, detail: bool = False) -> dict[str, Any]:
        url = f"{self.base}/stats" + ("?detail=1" if detail else "")
        with urllib.request.urlopen(url, timeout=30) as response:
            stats: dict[str, Any] = json.loads(response.read())
        return stats

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.base}/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30):
            pass

    async def wait_for(self, count: int, *, timeout_s: float) -> dict[str, Any]:
        """Stats once ``count`` distinct deliveries arrived, or at the deadline."""
        deadline = time.monotonic() + timeout_s
        stats = self.stats()
        while stats["unique"] < count and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            stats = self.stats()
        return stats


def _change(stage: str, event_time: datetime) -> StageChanged:
    return StageChanged(
        id=str(uuid.uuid4()),
        funnel="lifecycle",
        funnel_version="bench",
        contact_id=f"c-{uuid.uuid4().hex[:12]}",
        from_stage=None,
        to_stage=stage,
        furthest_stage=stage,
        rule_id="bench",
        cause_message_id=str(uuid.uuid4()),
        event_time=event_time,
        processed_at=event_time,
        traits={},
    )


async def produce_changes(
    kafka: KafkaSettings, topic: str, *, stage: str, count: int, rate: float | None = None
) -> None:
    """``count`` contacts entering ``stage``, event time = now; all at once or at ``rate``/s."""
    producer = AIOKafkaProducer(**producer_kwargs(kafka, client_id="bench-notifier"))
    await producer.start()
    try:
        started = time.monotonic()
        pending = []
        for index in range(count):
            if rate:
                await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
            change = _change(stage, datetime.now(UTC))
            record = encode_model(
                change,
                key=change.contact_id,
                event_id=change.id,
                event_type="funnel.stage_changed",
                source="/bench",
                time=change.processed_at,
            )
            pending.append(
                await producer.send(
                    topic, record.value, key=record.key.encode(), headers=record.headers
                )
            )
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def send_signed(url: str, secret: str, count: int, *, concurrency: int) -> None:
    """The baseline: ``count`` signed posts from one aiohttp session (the notifier's own
    HTTP client, set up as the notifier sets it up), ``concurrency`` at once."""
    key = decode_secret(secret)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            queue.get_nowait()
            webhook_id = "msg_" + uuid.uuid4().hex
            body = json.dumps(
                {"type": "followup.entered", "timestamp": datetime.now(UTC).isoformat(),
                 "data": {"followupId": webhook_id, "rule": {"id": "baseline"}}},
                separators=(",", ":"), sort_keys=True,
            ).encode()  # fmt: skip
            headers = {"content-type": "application/json"}
            headers |= signature_headers(
                key=key, webhook_id=webhook_id, timestamp=int(time.time()), body=body
            )
            async with session.post(
                url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=10),
                allow_redirects=False,
            ) as response:
                response.raise_for_status()

    connector = aiohttp.TCPConnector(limit=max(100, concurrency))
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
