"""Memory: the stage engine's resident memory and serialized state size after N contacts.

The worker starts on an empty topic (its idle RSS is noted), then every contact
sends one identify with an email (a lead in ``lifecycle``). Once the worker has
processed them all, its RSS is read with psutil, and the serialized state size
is the mean size of the table's changelog values (what faust stores per contact).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator

from aiokafka import AIOKafkaConsumer
from funnel_shared.publishing import OutboundRecord
from funnel_shared.settings import KafkaSettings

from funnel_bench.bench_stage_engine import STORE, faust_processed, start_worker, wait_processed
from funnel_bench.context import BenchContext
from funnel_bench.journeys import contact_record, preload
from funnel_bench.result import Measurement
from funnel_bench.stack import unique

__all__ = ["run"]

SAMPLE = 2000
MB = 2**20


def _contacts(count: int, prefix: str) -> Iterator[OutboundRecord]:
    for i in range(count):
        traits = {"email": f"{prefix}-{i}@example.com", "name": f"Contact {i}"}
        yield contact_record(f"{prefix}-{i}", 0, "identify", {"traits": traits})


async def _mean_value_size(kafka: KafkaSettings, topic: str, wanted: int) -> float | None:
    """The mean size of the first ``wanted`` values (the changelog holds one per event)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    sizes: list[int] = []
    deadline = time.monotonic() + 30
    try:
        while len(sizes) < wanted and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=wanted)
            sizes += [len(r.value or b"") for rs in batches.values() for r in rs]
    finally:
        await consumer.stop()
    return statistics.fmean(sizes) if sizes else None


async def run(ctx: BenchContext) -> list[Measurement]:
    topics, env = await ctx.stack.topics("memory")
    app_id = unique("bench-memory")
    worker, port = start_worker(ctx, env, app_id)
    try:
        worker.wait_http(f"http://127.0.0.1:{port}/readyz", timeout_s=180)
        idle_rss = worker.rss_bytes()
        sent = await preload(
            ctx.stack.kafka, topics.contact_events, _contacts(ctx.memory_contacts, unique("m"))
        )
        # Bounded: at a few hundred events/s on a busy machine 100k contacts take minutes.
        budget = max(ctx.duration_s, 600.0)
        progress = await wait_processed(
            ctx, worker, lambda: faust_processed(port), sent, seconds=budget
        )
        rss = worker.rss_bytes()
    finally:
        worker.stop()
    processed = progress.processed
    # Fewer contacts than SAMPLE (a short run) must not wait out the deadline for the rest.
    changelog = f"{app_id}-contact_to_state-changelog"
    state_bytes = await _mean_value_size(ctx.stack.kafka, changelog, min(SAMPLE, processed))
    settings = {"contacts": ctx.memory_contacts, "events_per_contact": 1, "store": STORE}
    extra = {
        "processed": processed,
        "idle_rss_mb": round(idle_rss / MB, 1),
        "rss_growth_bytes_per_contact": round((rss - idle_rss) / processed) if processed else None,
    }
    notes = [] if processed >= sent else [f"only {processed} of {sent} contacts processed in time"]
    return [
        Measurement(
            name="memory.rss",
            title=f"Stage engine RSS after {processed:,} contacts",
            unit="MB",
            figure=rss / MB,
            cpu_seconds=progress.cpu,
            settings=settings,
            extra=extra,
            notes=notes,
        ),
        Measurement(
            name="memory.state",
            title="Serialized state per contact (changelog value)",
            unit="bytes",
            figure=state_bytes,
            settings={**settings, "sampled_records": SAMPLE},
            notes=[
                "the table's JSON value after one identify; grows with seen messageIds (<= 200)"
            ],
        ),
    ]
