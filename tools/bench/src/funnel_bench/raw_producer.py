"""The ingest baseline (``python -m funnel_bench.raw_producer``): a bare aiokafka producer.

It sends the very records ingest wrote (same keys, values and headers), with
the same producer settings (``funnel_shared.kafka.producer_kwargs``, acks=all),
in chunks of the batch size, pipelined: as many chunks' acks outstanding as the
load generator has connections. It counts acknowledged records.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
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


async def _pipeline(
    producer: AIOKafkaProducer,
    topic: str,
    records: list[dict[str, Any]],
    *,
    window: int,
    until: float,
) -> int:
    """Send chunk after chunk from one coroutine, keeping ``window`` chunks' acks outstanding.

    ``send()`` returns once the record is in the producer's buffer; the returned
    futures resolve on the broker's ack. One sender, not ``window`` concurrent
    lanes: with 8 coroutines each sending a chunk and awaiting its acks on the
    shared producer, aiokafka 0.14 on the embedded broker fell from ~48k to ~5k
    records/s (2 lanes ~25k, 4 ~13k), while one sender with 8 chunks outstanding
    kept ~50k. Ingest's 8 connections x 100 concurrent send_and_wait() are the
    many-coroutine pattern; the baseline is what the same producer does at best.
    """
    acked = 0
    outstanding: collections.deque[asyncio.Future[list[Any]]] = collections.deque()
    while time.monotonic() < until:
        futures = [await producer.send(topic, **record) for record in records]
        outstanding.append(asyncio.gather(*futures))
        if len(outstanding) >= window:
            acked += len(await outstanding.popleft())
    for chunk in outstanding:
        acked += len(await chunk)
    return acked


async def _run(args: argparse.Namespace) -> dict[str, float]:
    records = _load(Path(args.records_file))
    producer = AIOKafkaProducer(**producer_kwargs(KafkaSettings(), client_id="bench-raw"))
    await producer.start()
    try:
        # Warm-up, not counted: connections, metadata, the broker's first batches.
        warm_until = time.monotonic() + args.warmup
        await _pipeline(producer, args.topic, records, window=args.in_flight, until=warm_until)
        started = time.monotonic()
        until = started + args.duration
        acked = await _pipeline(producer, args.topic, records, window=args.in_flight, until=until)
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
