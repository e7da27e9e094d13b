"""End-to-end probe (``python -m funnel_bench.e2e_probe``): fixed-rate sends, stage changes read.

Sends one ``Signed Up`` track call per new contact at a fixed rate, notes the
time of each 2xx, and reads ``funnel.stage-changed.v1`` with a short fetch wait,
noting when the first stage change caused by each messageId is readable. Both
clocks are this process's monotonic clock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition

MARKER = "BENCH-JSON "


async def _read(consumer: AIOKafkaConsumer, seen: dict[str, float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        batches = await consumer.getmany(timeout_ms=100)
        now = time.monotonic()
        for record in (r for rs in batches.values() for r in rs):
            cause = json.loads(record.value).get("causeMessageId")
            if cause and cause not in seen:
                seen[cause] = now


async def _send(
    session: aiohttp.ClientSession, url: str, i: int, run: str, acked: dict[str, float]
) -> None:
    message_id = f"{run}-{i}"
    body = {"userId": f"{run}-contact-{i}", "event": "Signed Up", "messageId": message_id}
    try:
        async with session.post(url, json=body) as response:
            await response.read()
            if 200 <= response.status < 300:
                acked[message_id] = time.monotonic()
    except aiohttp.ClientError:
        pass


async def _run(args: argparse.Namespace) -> dict[str, object]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap, fetch_max_wait_ms=10, enable_auto_commit=False
    )
    await consumer.start()
    await consumer.topics()
    partitions = [
        TopicPartition(args.topic, p) for p in consumer.partitions_for_topic(args.topic) or ()
    ]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    seen: dict[str, float] = {}
    acked: dict[str, float] = {}
    stop = asyncio.Event()
    reader = asyncio.create_task(_read(consumer, seen, stop))
    run = uuid.uuid4().hex[:8]
    total = int(args.rate * args.seconds)
    headers = {"Authorization": args.auth}
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        started = time.monotonic()
        tasks = []
        for i in range(total):
            delay = started + i / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_send(session, args.url, i, run, acked)))
        await asyncio.gather(*tasks)
        send_seconds = time.monotonic() - started
    for _ in range(int(args.drain_seconds / 0.05)):  # Bounded wait for the last changes.
        if set(acked) <= set(seen):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await reader
    await consumer.stop()
    latencies = sorted((seen[m] - t) * 1000 for m, t in acked.items() if m in seen)
    return {
        "by_third": _by_third(acked, seen, started, send_seconds),
        "sent": total,
        "acked": len(acked),
        "matched": len(latencies),
        "send_seconds": send_seconds,
        "latencies_ms": latencies,
    }


def _by_third(
    acked: dict[str, float], seen: dict[str, float], started: float, seconds: float
) -> list[dict[str, float | None]]:
    """p50 and p99 of the events sent in each third of the run: shows a drift over time."""
    thirds: list[list[float]] = [[], [], []]
    for message_id, at in acked.items():
        if message_id in seen:
            third = min(2, int(3 * (at - started) / max(seconds, 1e-9)))
            thirds[third].append((seen[message_id] - at) * 1000)
    return [{"p50_ms": _nearest(t, 50), "p99_ms": _nearest(t, 99)} for t in thirds]


def _nearest(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered), max(1, round(q / 100 * len(ordered) + 0.5))) - 1], 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--auth", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--drain-seconds", type=float, default=30)
    print(MARKER + json.dumps(asyncio.run(_run(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
