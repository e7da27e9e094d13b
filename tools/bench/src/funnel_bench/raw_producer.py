"""The ingest baseline (``python -m funnel_bench.raw_producer``): a bare aiokafka producer.

It sends the very records ingest wrote (same keys, values and headers), with
the same producer settings (``funnel_shared.kafka.producer_kwargs``), in chunks
of the batch size with as many chunks in flight as the load generator has
connections, and counts acknowledged records.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from funnel_shared.kafka import producer_kwargs
from funnel_shared.settings import KafkaSettings

MARKER = "BENCH-JSON "


def _load(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text().splitlines():
        item = json.loads(line)
        records.append(
            {
                "key": item["key"].encode(),
                "value": item["value"].encode(),
                "headers": [(k, v.encode()) for k, v in item["headers"]],
            }
        )
    return records


async def _chunk(producer: AIOKafkaProducer, topic: str, records: list[dict[str, Any]]) -> int:
    # send() in order, then wait for every ack. Not 100 concurrent send_and_wait()
    # calls as ingest makes: with 8 such chunks at once (800 sends over 6 partitions)
    # aiokafka 0.14 crawled at about 100 records per 4 s on the embedded broker.
    futures = [await producer.send(topic, **record) for record in records]
    await asyncio.gather(*futures)
    return len(records)


async def _run(args: argparse.Namespace) -> dict[str, float]:
    records = _load(Path(args.records_file))
    producer = AIOKafkaProducer(**producer_kwargs(KafkaSettings(), client_id="bench-raw"))
    await producer.start()
    acked = 0
    try:
        # Warm-up, not counted: connections, metadata, the broker's first batches.
        warm_until = time.monotonic() + args.warmup

        async def warm() -> None:
            while time.monotonic() < warm_until:
                await _chunk(producer, args.topic, records)

        await asyncio.gather(*(warm() for _ in range(args.in_flight)))
        started = time.monotonic()
        until = started + args.duration

        async def lane() -> None:
            nonlocal acked
            while time.monotonic() < until:
                acked += await _chunk(producer, args.topic, records)

        await asyncio.gather(*(lane() for _ in range(args.in_flight)))
        elapsed = time.monotonic() - started
    finally:
        await producer.stop()
    return {"acked": acked, "duration_s": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records-file", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds, not counted")
    print(MARKER + json.dumps(asyncio.run(_run(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
