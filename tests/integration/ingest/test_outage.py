"""A broker outage during a stream of requests: every 2xx is on the topic once the broker
is back, everything else got 503 with Retry-After, and no request hangs.

The outage is a SIGSTOP of a broker of this test's own (never the session's): from the
client's side it is a broker that stopped answering, and unlike a restart of the
in-memory embedded broker it keeps the records it already acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from funnel_devstack.broker import EMBEDDED_BROKER_ENV, EmbeddedBroker
from funnel_devstack.processes import free_port
from funnel_shared.events import ContactEvent
from funnel_shared.kafka import ensure_topics
from funnel_shared.settings import KafkaSettings, TopicSettings

from tests.support.ingest_server import serve_ingest
from tests.support.kafka_reader import read_all

pytestmark = pytest.mark.integration

WRITE_KEY = "wk-outage"
PRODUCE_TIMEOUT_S = 2.0
CLIENT_TIMEOUT_S = PRODUCE_TIMEOUT_S + 30  # Far beyond the produce timeout: only a hang hits it.
MAX_REQUESTS = 400


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[KafkaSettings, int]]:
    """A broker for this test alone, and its process id (for SIGSTOP)."""
    if "KAFKA_BOOTSTRAP_SERVERS" in os.environ or os.environ.get("FUNNEL_TEST_BACKEND"):
        pytest.skip("the outage test pauses an embedded broker of its own")
    port = free_port()
    broker = EmbeddedBroker(port=port, log_file=tmp_path / "broker.log")
    broker.start()
    try:
        [process] = [
            child
            for child in psutil.Process().children()
            if f"tcp://127.0.0.1:{port}" in " ".join(child.cmdline())
        ]
        fields = {k.removeprefix("KAFKA_").lower(): v for k, v in EMBEDDED_BROKER_ENV.items()}
        settings = KafkaSettings.model_validate(
            {**fields, "bootstrap_servers": broker.bootstrap_servers}
        )
        try:
            yield settings, process.pid
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGCONT)  # Never leave it frozen.
    finally:
        broker.stop()


class Stream:
    """Requests sent one after another by a few concurrent senders, each with known ids."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ok: list[str] = []
        self.refused: list[httpx.Response] = []
        self.hung: list[BaseException] = []
        self.sent = 0
        self.stopping = asyncio.Event()

    async def sender(self, name: str) -> None:
        async with httpx.AsyncClient(
            base_url=self.url, auth=(WRITE_KEY, ""), timeout=CLIENT_TIMEOUT_S
        ) as client:
            while not self.stopping.is_set() and self.sent < MAX_REQUESTS:
                self.sent += 1
                ids = [f"{name}-{self.sent}-{i}-{uuid.uuid4().hex[:8]}" for i in range(3)]
                batch = [
                    {"type": "track", "userId": f"u-{i}", "event": "Tick", "messageId": message_id}
                    for i, message_id in enumerate(ids)
                ]
                try:
                    answer = await client.post("/v1/batch", json={"batch": batch})
                except httpx.TimeoutException as exc:
                    self.hung.append(exc)
                    continue
                if answer.status_code == 200:
                    self.ok.extend(ids)
                else:
                    self.refused.append(answer)
                await asyncio.sleep(0.02)


async def _readyz(url: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT_S) as client:
        return (await client.get("/readyz")).status_code


async def _until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def _read_ids(bootstrap: str, topic: str, timeout_s: float) -> list[str]:
    """Every messageId on the topic. Ingest has stopped: nothing more will arrive."""
    records = read_all(bootstrap, topic, timeout_s=timeout_s)
    return [ContactEvent.model_validate_json(record.value).message_id for record in records]


async def test_during_a_broker_outage_2xx_means_stored_and_everything_else_is_503(
    own_broker: tuple[KafkaSettings, int],
) -> None:
    kafka, broker_pid = own_broker
    suffix = uuid.uuid4().hex[:12]
    topics = TopicSettings(
        contact_events=f"outage.events.{suffix}", rejected=f"outage.rejected.{suffix}"
    )
    await asyncio.wait_for(ensure_topics(kafka, topics.all()), 60)
    with serve_ingest(
        kafka=kafka,
        topics=topics,
        write_keys={"site": WRITE_KEY},
        produce_timeout_s=PRODUCE_TIMEOUT_S,
        retry_after_s=1,
    ) as url:
        stream = Stream(url)
        senders = [asyncio.create_task(stream.sender(f"s{n}")) for n in range(3)]
        try:
            await _until(lambda: len(stream.ok) >= 15, 60, "requests accepted before the outage")
            os.kill(broker_pid, signal.SIGSTOP)
            try:
                refused_before = len(stream.refused)
                await _until(lambda: len(stream.refused) >= refused_before + 6, 60, "503s")
                ready_during = await _readyz(url)
            finally:
                os.kill(broker_pid, signal.SIGCONT)
            accepted_at_resume = len(stream.ok)
            await _until(
                lambda: len(stream.ok) >= accepted_at_resume + 15, 90, "acceptance after recovery"
            )
            ready_after = await _readyz(url)
        finally:
            stream.stopping.set()
            await asyncio.gather(*senders)

    assert (ready_during, ready_after) == (503, 200)
    assert stream.hung == [], "a request hung past the produce timeout"
    assert {answer.status_code for answer in stream.refused} == {503}
    assert all(answer.headers["Retry-After"] == "1" for answer in stream.refused)
    seen = await asyncio.to_thread(_read_ids, kafka.bootstrap_servers, topics.contact_events, 60)
    missing = set(stream.ok) - set(seen)
    assert not missing, f"{len(missing)} acknowledged messages are not on the topic"
