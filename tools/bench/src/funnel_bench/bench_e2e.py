"""End to end: latency from ingest's 2xx to the stage change being readable, at a fixed rate.

Ingest and the stage engine run as real processes; the probe (a separate
process) sends and reads. Both services run with the bench's broker settings,
as a user would run them on that broker: on the embedded one that includes
``KAFKA_FETCH_MAX_WAIT_MS`` (50 ms), which the stage engine's faust consumer
uses too, and the stage engine's default batch limit.
"""

from __future__ import annotations

import json
import statistics
import threading
from typing import Any

import psutil
from funnel_devstack.processes import free_port
from funnel_stage_engine.settings import StageEngineSettings

from funnel_bench.bench_stage_engine import start_worker
from funnel_bench.context import WRITE_KEY, BenchContext, basic_auth
from funnel_bench.procs import (
    CpuMeter,
    Service,
    cpu_seconds,
    entry_point,
    run_measured,
    venv_python,
)
from funnel_bench.result import Measurement
from funnel_bench.stack import unique

__all__ = ["CpuTimeline", "percentile", "run"]

TIMELINE_STEP_S = 5.0


class CpuTimeline:
    """Percent of one core a process used in each ``TIMELINE_STEP_S`` window, sampled
    by a thread while the probe runs (the embedded broker's cost grows as a run goes on)."""

    def __init__(self, pid: int | None) -> None:
        self._pid = pid
        self._stop = threading.Event()
        self.percent: list[float] = []
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> CpuTimeline:
        if self._pid is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=TIMELINE_STEP_S * 2)

    def _sample(self) -> None:
        assert self._pid is not None
        try:
            last = cpu_seconds(self._pid)
            while not self._stop.wait(TIMELINE_STEP_S):
                now = cpu_seconds(self._pid)
                self.percent.append(round(100 * (now - last) / TIMELINE_STEP_S))
                last = now
        except psutil.Error:  # The process went away: the timeline ends there.
            return


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, round(q / 100 * len(sorted_values) + 0.5))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def run(ctx: BenchContext) -> list[Measurement]:
    stack = ctx.stack
    _, topic_env = await stack.topics("e2e")
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
    worker, worker_port = start_worker(ctx, topic_env, unique("bench-e2e"))
    try:
        ingest.wait_http(f"http://127.0.0.1:{port}/readyz")
        worker.wait_http(f"http://127.0.0.1:{worker_port}/readyz", timeout_s=180)
        argv = [venv_python(), "-m", "funnel_bench.e2e_probe"]
        argv += ["--url", f"http://127.0.0.1:{port}/v1/track", "--auth", basic_auth()]
        argv += ["--bootstrap", stack.kafka.bootstrap_servers]
        argv += ["--topic", topic_env["TOPIC_STAGE_CHANGED"]]
        argv += ["--rate", str(ctx.e2e_rate), "--seconds", str(ctx.e2e_seconds)]
        meter = CpuMeter(stack.processes(ingest=ingest.pid, **{"stage-engine": worker.pid}))
        meter.start()
        with CpuTimeline(stack.broker_pid) as timeline:
            finished = run_measured(argv, timeout_s=ctx.e2e_seconds + 120, log_dir=ctx.log_dir)
        cpu = {**meter.stop(), "probe": finished.cpu_seconds}
    finally:
        ingest.stop()
        worker.stop()
    lines = [line for line in finished.stdout.splitlines() if line.startswith("BENCH-JSON ")]
    if finished.returncode != 0 or not lines:
        raise RuntimeError(f"e2e probe failed:\n{finished.stdout[-2000:]}")
    probe = json.loads(lines[-1].removeprefix("BENCH-JSON "))
    return _results(ctx, probe, cpu, timeline.percent)


def _results(
    ctx: BenchContext, probe: dict[str, Any], cpu: dict[str, float], broker_timeline: list[float]
) -> list[Measurement]:
    latencies: list[float] = probe["latencies_ms"]
    settings = {
        "rate_per_s": ctx.e2e_rate,
        "seconds": ctx.e2e_seconds,
        "probe_fetch_max_wait_ms": 10,
        "fetch_max_wait_ms": ctx.stack.kafka.fetch_max_wait_ms,
        # What the worker reads from the same environment.
        "stage_engine_batch_max_events": StageEngineSettings().batch_max_events,
        "producer_max_batch_size": ctx.stack.kafka.producer_max_batch_size,
    }
    extra = {
        "sent": probe["sent"],
        "acked_2xx": probe["acked"],
        "stage_changes_matched": probe["matched"],
        "achieved_rate_per_s": round(probe["sent"] / probe["send_seconds"], 1),
        "mean_ms": round(statistics.fmean(latencies), 1) if latencies else None,
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "by_third_of_run": probe.get("by_third"),
        f"broker_cpu_percent_per_{TIMELINE_STEP_S:.0f}s": broker_timeline or None,
    }
    notes = [
        "Latency floor on the embedded broker: Tansu does not wake a waiting fetch, so the"
        " stage engine and the probe each wait up to their fetch wait (KAFKA_FETCH_MAX_WAIT_MS,"
        " 10 ms for the probe) when they have caught up. The stage engine publishes each batch"
        " of waiting records and awaits the acks before storing; aiokafka keeps one produce"
        " request in flight per broker with at most one KAFKA_PRODUCER_MAX_BATCH_SIZE batch per"
        " partition, so a batch takes about one broker round trip per 16 KB per partition:"
        " when the machine is busy and round trips grow, the worker falls behind and latency"
        " climbs.",
        "What limits p99 on 2 cores: the embedded broker's CPU grows through the run"
        " (broker_cpu_percent_per_5s) while ingest's and the worker's stay flat, and latency"
        " grows with it (by_third_of_run). Tansu's in-memory storage spends CPU on a fetch"
        " that returns records in proportion to the record batches already stored in the"
        " partition (Apache Kafka finds an offset through its index). Measured alone, one"
        " producer at ~330 single-record batches/s with one consumer reading them cost the"
        " broker 18% of a core with 1k batches stored, 40% at 10k, 75% at 19k, 90% at 27k;"
        " the produce alone, or a caught-up consumer alone, stayed at 6-8%. Here ingest's"
        " single-event requests store thousands of small batches on the contact events, and"
        " three consumers fetch records many times a second (counted in one run, 15k events:"
        " the probe 2.6k fetches, the worker 1.2k fetches and 3.9k produce requests, its"
        " projection consumer 1.2k fetches and 1.2k offset commits, ingest 5.3k produce"
        " requests). On a lightly loaded machine the first third of the run met p99 <= 150 ms"
        " (95 ms) and the last third did not (200 ms); a longer run would do worse.",
    ]
    if probe["matched"] < probe["acked"]:
        notes.append(
            f"{probe['acked'] - probe['matched']} accepted events had no stage change in time"
        )
    status = "ok" if latencies else "failed"
    common: dict[str, Any] = {
        "unit": "ms",
        "cpu_seconds": cpu,
        "settings": settings,
        "status": status,
    }
    return [
        Measurement(
            name="e2e.p50",
            title="End to end, p50 (2xx to stage change readable)",
            figure=percentile(latencies, 50),
            extra=extra,
            notes=notes,
            **common,
        ),
        Measurement(
            name="e2e.p99",
            title="End to end, p99",
            figure=percentile(latencies, 99),
            target="<= 150 ms",
            **common,
        ),
    ]
