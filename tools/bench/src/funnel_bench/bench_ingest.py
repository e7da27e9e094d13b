"""Ingest: 100-message batches against a raw producer, single events against an empty endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from funnel_devstack.processes import free_port
from funnel_shared.settings import KafkaSettings

from funnel_bench.context import WRITE_KEY, BenchContext, basic_auth
from funnel_bench.load import LoadResult, LoadSpec, run_load
from funnel_bench.procs import CpuMeter, Service, entry_point, run_measured, venv_python
from funnel_bench.profiling import Recording, summarize
from funnel_bench.result import Measurement
from funnel_bench.stack import count_records

__all__ = ["BATCH_SIZE", "batch_body", "run"]

BATCH_SIZE = 100
BATCH_CONNECTIONS = 8
SINGLE_CONNECTIONS = 32


def _message(i: int) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": f"bench-user-{i}",
        "event": "Product Viewed",
        "properties": {"product_id": f"sku-{i % 17}", "price": 19.5, "currency": "EUR"},
        "context": {"page": {"path": "/products/x"}, "userAgent": "funnel-bench"},
    }


def batch_body(size: int = BATCH_SIZE) -> bytes:
    return json.dumps({"batch": [_message(i) for i in range(size)]}).encode()


def _single_body() -> bytes:
    return json.dumps(_message(0)).encode()


def _headers() -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": basic_auth()}


async def run(ctx: BenchContext) -> list[Measurement]:
    stack = ctx.stack
    topics, topic_env = await stack.topics("ingest")
    port = free_port()
    ingest = Service(
        "ingest",
        [entry_point("funnel-ingest")],
        env={
            **stack.kafka_env,
            **topic_env,
            "INGEST_PORT": str(port),
            "INGEST_WRITE_KEYS": json.dumps({"bench": WRITE_KEY}),
        },
        log_dir=ctx.log_dir,
    )
    try:
        ingest.wait_http(f"http://127.0.0.1:{port}/readyz")
        base = f"http://127.0.0.1:{port}"
        batch = _measure(
            ctx,
            ingest,
            f"{base}/v1/batch",
            batch_body(),
            BATCH_CONNECTIONS,
            profile="ingest (100-message /v1/batch)",
        )
        on_topic = await count_records(stack.kafka, [topics.contact_events])
        records_file = await _sample_records(stack.kafka, topics.contact_events, ctx.log_dir)
        single = _measure(
            ctx,
            ingest,
            f"{base}/v1/track",
            _single_body(),
            SINGLE_CONNECTIONS,
            profile="ingest (single /v1/track)",
        )
    finally:
        ingest.stop()
    raw_rate, raw_cpu, raw_us = await _raw_producer(ctx, records_file)
    empty = _empty_endpoint(ctx)
    return [
        _batch_result(ctx, batch, on_topic, (raw_rate, raw_cpu, raw_us)),
        _single_result(ctx, single, empty),
    ]


WARMUP_S = 1.0


def _measure(
    ctx: BenchContext,
    service: Service,
    url: str,
    body: bytes,
    connections: int,
    *,
    profile: str | None = None,
) -> tuple[LoadResult, dict[str, float]]:
    """A warm-up run (not counted), then the measured one, under py-spy if ``profile``."""
    warmup = LoadSpec(url, body, _headers(), connections, WARMUP_S)
    run_load(warmup, tool=ctx.load_tool, log_dir=ctx.log_dir)
    spec = LoadSpec(url, body, _headers(), connections, ctx.duration_s)
    processes = {service.name: service.pid}
    meter = CpuMeter(ctx.stack.processes(**processes) if service.name == "ingest" else processes)
    recording = None
    if profile and ctx.profile:
        out = ctx.log_dir / f"{service.name}-{connections}.pyspy.txt"
        recording = Recording(service.pid, seconds=ctx.duration_s, out=out)
    meter.start()
    result = run_load(spec, tool=ctx.load_tool, log_dir=ctx.log_dir)
    cpu = {**meter.stop(), f"load ({result.tool})": result.cpu_seconds}
    if recording is not None and profile:
        recording.finish(timeout_s=30)
        summary = {"error": recording.error} if recording.error else summarize(recording.out)
        summary["summary"] = (
            f"py-spy record of funnel-ingest during the measured {ctx.duration_s:.0f} s"
            f" ({connections} connections); {summary.get('samples', 0)} samples at 100 Hz."
        )
        ctx.profiles[profile] = summary
    return result, cpu


async def _sample_records(kafka: KafkaSettings, topic: str, log_dir: Path) -> Path:
    """One batch's worth of the records ingest wrote: one per contact key of the batch body.

    One per key, not the first hundred on the topic: those can all sit in one
    partition, and a producer writing to one partition is much slower than to six.
    """
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    by_key: dict[bytes, str] = {}
    try:
        for _ in range(200):
            if len(by_key) >= BATCH_SIZE:
                break
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            for record in (r for rs in batches.values() for r in rs):
                item = {
                    "key": (record.key or b"").decode(),
                    "value": record.value.decode(),
                    "headers": [[k, v.decode()] for k, v in record.headers],
                }
                by_key.setdefault(record.key or b"", json.dumps(item))
    finally:
        await consumer.stop()
    if len(by_key) < BATCH_SIZE:
        raise RuntimeError(f"found {len(by_key)} of {BATCH_SIZE} keys to replay on {topic}")
    path = log_dir / "ingest-records.jsonl"
    path.write_text("\n".join(list(by_key.values())[:BATCH_SIZE]) + "\n")
    return path


async def _raw_producer(
    ctx: BenchContext, records_file: Path
) -> tuple[float, dict[str, float], float]:
    """Acked records/s, CPU seconds by process, and the producer's CPU us per acked record."""
    topics, _ = await ctx.stack.topics("raw")
    argv = [venv_python(), "-m", "funnel_bench.raw_producer", "--records-file", str(records_file)]
    argv += ["--topic", topics.contact_events, "--duration", str(ctx.duration_s)]
    argv += ["--in-flight", str(BATCH_CONNECTIONS)]
    meter = CpuMeter(ctx.stack.processes())
    meter.start()
    finished = run_measured(
        argv, env=ctx.stack.kafka_env, timeout_s=ctx.duration_s + 120, log_dir=ctx.log_dir
    )
    cpu = {**meter.stop(), "raw producer": finished.cpu_seconds}
    lines = [line for line in finished.stdout.splitlines() if line.startswith("BENCH-JSON ")]
    if finished.returncode != 0 or not lines:
        raise RuntimeError(f"raw producer failed:\n{finished.stdout[-2000:]}")
    totals = json.loads(lines[-1].removeprefix("BENCH-JSON "))
    per_record_us = totals["cpu_s"] / max(totals["acked"], 1) * 1e6
    return totals["acked"] / totals["duration_s"], cpu, per_record_us


def _empty_endpoint(ctx: BenchContext) -> tuple[LoadResult, dict[str, float]]:
    port = free_port()
    server = Service(
        "empty-endpoint",
        [venv_python(), "-m", "funnel_bench.empty_app", "--port", str(port)],
        env={},
        log_dir=ctx.log_dir,
    )
    try:
        server.wait_http(f"http://127.0.0.1:{port}/readyz")
        url = f"http://127.0.0.1:{port}/v1/track"
        return _measure(ctx, server, url, _single_body(), SINGLE_CONNECTIONS)
    finally:
        server.stop()


def _batch_result(
    ctx: BenchContext,
    batch: tuple[LoadResult, dict[str, float]],
    on_topic: int,
    raw: tuple[float, dict[str, float], float],
) -> Measurement:
    load, cpu = batch
    raw_rate, raw_cpu, raw_us = raw
    accepted = load.ok * BATCH_SIZE
    ingest_us = cpu.get("ingest", 0.0) / max(accepted, 1) * 1e6
    result = Measurement(
        name="ingest.batch",
        title="Ingest, 100-message batches",
        unit="events/s",
        figure=accepted / load.duration_s if load.duration_s else None,
        baseline=(
            f"raw aiokafka producer, same records and producer settings, one sender,"
            f" {BATCH_CONNECTIONS} chunks' acks outstanding"
        ),
        baseline_figure=raw_rate,
        target=">= 0.7",
        cpu_seconds=cpu,
        baseline_cpu_seconds=raw_cpu,
        settings=_settings(ctx, load, BATCH_CONNECTIONS, batch_size=BATCH_SIZE),
        extra={
            "requests_2xx": load.ok,
            "requests": load.requests,
            "events_on_topic": on_topic,
            "ingest_cpu_us_per_event": round(ingest_us, 1),
            "raw_cpu_us_per_record": round(raw_us, 1),
        },
    )
    bound = raw_us / ingest_us if ingest_us else 0.0
    result.notes.append(
        f"CPU per event: ingest {ingest_us:.0f} us per accepted event, the raw producer"
        f" {raw_us:.0f} us per acked record (their ratio: {bound:.2f}). Both are CPU-bound in"
        " one Python process, so the throughput ratio stays near that CPU ratio. Ingest"
        " buffers a request's records with send() and awaits their acks together, as the"
        " baseline does, and pays about the baseline's aiokafka cost per record; the rest is"
        " HTTP, JSON decoding and the depth check, the size and U+0000 checks (one JSON"
        " encoding per message), two pydantic validations per message (the Segment message,"
        " then the ContactEvent built from its fields), enrichment, JSON encoding and"
        " CloudEvents headers: the profile shows each."
    )
    if ctx.profile:
        result.notes.append("py-spy sampled ingest (100 Hz, non-blocking) while it was measured")
    if on_topic < accepted:
        result.status = "failed"
        result.notes.append(f"only {on_topic} of {accepted} accepted events are on the topic")
    return result


def _single_result(
    ctx: BenchContext,
    single: tuple[LoadResult, dict[str, float]],
    empty: tuple[LoadResult, dict[str, float]],
) -> Measurement:
    load, cpu = single
    ingest_us = cpu.get("ingest", 0.0) / max(load.ok, 1) * 1e6
    empty_us = empty[1].get("empty-endpoint", 0.0) / max(empty[0].ok, 1) * 1e6
    notes = [
        f"CPU per request: ingest {ingest_us:.0f} us, the empty endpoint {empty_us:.0f} us"
        " (uvicorn, h11, the access log and FastAPI's own layers, shared by both). Ingest adds"
        " write-key checking, JSON decoding, validation and enrichment, encoding, the aiokafka"
        " send and its ack, CORS and request metrics: the profile shows where. Every request"
        " sends the same message, so all records share one key and one partition: once that"
        " partition's producer batch is full (producer_max_batch_size), the other requests'"
        " send() calls wait for it to be drained."
    ]
    notes += ["py-spy sampled ingest (100 Hz, non-blocking) while it was measured"] * ctx.profile
    return Measurement(
        notes=notes,
        name="ingest.single",
        title="Ingest, single /v1/track",
        unit="requests/s",
        figure=load.ok_per_s,
        baseline="empty FastAPI endpoint, same uvicorn settings",
        baseline_figure=empty[0].ok_per_s,
        target=">= 0.7",
        cpu_seconds=cpu,
        baseline_cpu_seconds=empty[1],
        settings=_settings(ctx, load, SINGLE_CONNECTIONS),
        extra={
            "requests_2xx": load.ok,
            "requests": load.requests,
            "ingest_cpu_us_per_request": round(ingest_us, 1),
            "empty_cpu_us_per_request": round(empty_us, 1),
        },
    )


def _settings(ctx: BenchContext, load: LoadResult, connections: int, **more: Any) -> dict[str, Any]:
    kafka = ctx.stack.kafka
    return {
        "load_tool": load.tool,
        "connections": connections,
        "seconds": round(load.duration_s, 2),
        "uvicorn": "1 worker, log_level=info, proxy_headers=False",
        "acks": "all",
        "producer_max_batch_size": kafka.producer_max_batch_size,
        "producer_linger_ms": kafka.producer_linger_ms,
        **more,
    }
