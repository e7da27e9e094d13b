"""Stage engine: the real faust worker against a plain aiokafka loop running the same rules.

Both read the same kind of preloaded contact events (each from its own topic)
and write one changelog record per event. Progress is each process's own count
of finished events (the worker's /metrics, the loop's progress file), sampled
four times a second; the rate counts from the first finished event, so start-up
and the group join are not in it. Changelog and output records are counted on
the topics afterwards, as a check.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funnel_devstack.processes import free_port
from funnel_shared.kafka import ensure_topics

from funnel_bench.context import BenchContext
from funnel_bench.journeys import JOURNEY, journey_records, preload
from funnel_bench.procs import CpuMeter, Service, entry_point, venv_python
from funnel_bench.profiling import Recording, summarize
from funnel_bench.result import Measurement
from funnel_bench.stack import count_records, unique

__all__ = ["Progress", "run", "start_worker", "wait_processed"]

STORE = "rocksdb://"  # What production runs.
START_TIMEOUT_S = 180.0


@dataclass
class Progress:
    samples: list[tuple[float, int]] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def processed(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    @property
    def rate(self) -> float | None:
        """Records per second from the first sample with work done to the last one."""
        if len(self.samples) < 2:
            return None
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        return (n1 - n0) / (t1 - t0)


def start_worker(
    ctx: BenchContext, topic_env: dict[str, str], app_id: str, *, store: str = STORE
) -> tuple[Service, int]:
    """A ``funnel-stage-engine`` process and its HTTP port."""
    port = free_port()
    worker = Service(
        "stage-engine",
        [entry_point("funnel-stage-engine")],
        env={
            **ctx.stack.kafka_env,
            **topic_env,
            "STAGE_ENGINE_APP_ID": app_id,
            "STAGE_ENGINE_PORT": str(port),
            "STAGE_ENGINE_DATA_DIR": str(ctx.log_dir / app_id),
            "STAGE_ENGINE_STORE": store,
            "DATABASE_URL": ctx.database_url,
        },
        log_dir=ctx.log_dir,
    )
    return worker, port


def faust_processed(port: int) -> int:
    """Events the worker finished (every outcome), from its /metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError):
        return 0
    prefix = "funnel_stage_engine_events_processed_total{"
    return int(
        sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))
    )


def file_processed(path: Path) -> int:
    try:
        return int(path.read_text() or 0)
    except (OSError, ValueError):
        return 0


async def wait_processed(
    ctx: BenchContext,
    service: Service,
    processed: Callable[[], int],
    expected: int,
    *,
    seconds: float,
    recording: dict[str, Any] | None = None,
) -> Progress:
    """Sample the processed count until ``expected`` or ``seconds`` after the first event."""
    progress = Progress()
    meter = CpuMeter(ctx.stack.processes(**{service.name: service.pid}))
    meter.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    last_idle: float | None = None
    while time.monotonic() < deadline and progress.processed < expected:
        if not service.alive():
            raise RuntimeError(f"{service.name} exited\n{service.log_tail()}")
        count = await asyncio.to_thread(processed)
        now = time.monotonic()
        if count > 0 and not progress.samples:
            deadline = now + seconds
            if recording is not None:
                out = ctx.log_dir / f"{service.name}.pyspy.txt"
                recording["handle"] = Recording(service.pid, seconds=seconds, out=out)
        if count > 0:
            if not progress.samples and last_idle is not None:
                progress.samples.append((last_idle, 0))  # Work began after this sample.
            progress.samples.append((now, count))
        else:
            last_idle = now
            meter.start()  # CPU is counted from the last sample before work began.
        await asyncio.sleep(0.25)
    if not progress.samples:
        raise TimeoutError(f"{service.name} processed nothing\n{service.log_tail()}")
    progress.cpu = meter.stop()
    return progress


async def _preloaded_topics(ctx: BenchContext, label: str) -> tuple[Any, dict[str, str], int]:
    topics, env = await ctx.stack.topics(label)
    sent = await preload(
        ctx.stack.kafka,
        topics.contact_events,
        journey_records(ctx.stage_events, prefix=unique("c")),
    )
    return topics, env, sent


async def _faust(ctx: BenchContext) -> tuple[Progress, dict[str, Any]]:
    topics, env, sent = await _preloaded_topics(ctx, "stage")
    app_id = unique("bench-stage-engine")
    worker, port = start_worker(ctx, env, app_id)
    recording: dict[str, Any] = {}
    handle: Recording | None = None
    try:
        progress = await wait_processed(
            ctx,
            worker,
            lambda: faust_processed(port),
            sent,
            seconds=ctx.duration_s,
            recording=recording if ctx.profile else None,
        )
        handle = recording.get("handle")
        if handle is not None:
            handle.finish(timeout_s=ctx.duration_s + 30)
    finally:
        worker.stop()
    outputs = await count_records(ctx.stack.kafka, [topics.stage_changed])
    progress.extra = {
        "changelog_records": await count_records(
            ctx.stack.kafka, [f"{app_id}-contact_to_state-changelog"]
        ),
        "stage_changes": outputs,
    }
    profile: dict[str, Any] = {}
    if handle is not None:
        profile = {"error": handle.error} if handle.error else summarize(handle.out)
    return progress, profile


async def _plain(ctx: BenchContext) -> Progress:
    topics, _, sent = await _preloaded_topics(ctx, "plain")
    changelog = f"{topics.contact_events}.changelog"
    await ensure_topics(ctx.stack.kafka, [changelog])
    argv = [venv_python(), "-m", "funnel_bench.plain_loop", "--topic", topics.contact_events]
    argv += ["--out-topic", topics.stage_changed, "--changelog-topic", changelog]
    progress_file = ctx.log_dir / f"{changelog}.progress"
    argv += ["--group", unique("bench-plain"), "--progress-file", str(progress_file)]
    loop = Service("plain-loop", argv, env=ctx.stack.kafka_env, log_dir=ctx.log_dir)
    try:
        progress = await wait_processed(
            ctx, loop, lambda: file_processed(progress_file), sent, seconds=ctx.duration_s
        )
    finally:
        loop.stop()
    progress.extra = {
        "changelog_records": await count_records(ctx.stack.kafka, [changelog]),
        "stage_changes": await count_records(ctx.stack.kafka, [topics.stage_changed]),
    }
    return progress


async def run(ctx: BenchContext) -> list[Measurement]:
    faust_progress, profile = await _faust(ctx)
    plain_progress = await _plain(ctx)
    if profile:
        profile["summary"] = (
            f"py-spy record of the faust worker for {ctx.duration_s:.0f} s while it processed"
            f" the benchmark's events; {profile.get('samples', 0)} samples at 100 Hz."
        )
        ctx.profiles["stage engine"] = profile
    kafka = ctx.stack.kafka
    result = Measurement(
        name="stage_engine",
        title="Stage engine (faust worker)",
        unit="events/s",
        figure=faust_progress.rate,
        baseline="plain aiokafka loop, same rules, one changelog record per event",
        baseline_figure=plain_progress.rate,
        target=">= 0.25",
        cpu_seconds=faust_progress.cpu,
        baseline_cpu_seconds=plain_progress.cpu,
        settings={
            "preloaded_events": ctx.stage_events,
            "journey_steps": len(JOURNEY),
            "store": STORE,
            "partitions": kafka.partitions,
            "producer_max_batch_size": kafka.producer_max_batch_size,
            "acks": "all",
            "seconds_max": ctx.duration_s,
        },
        extra={
            "faust_processed": faust_progress.processed,
            **{f"faust_{k}": v for k, v in faust_progress.extra.items()},
            "plain_processed": plain_progress.processed,
            **{f"plain_{k}": v for k, v in plain_progress.extra.items()},
        },
    )
    result.notes.append(
        "The faust worker takes the records already waiting as one batch (up to"
        " STAGE_ENGINE_BATCH_MAX_EVENTS), publishes all their outputs, awaits every ack, and"
        " only then stores the states (the crash-safety order of the stage engine issue); the"
        " plain loop sends outputs and changelog records together and awaits acks once per"
        " fetched batch. The worker also runs the projection (stage changes into PostgreSQL,"
        " one pipelined statement per change, one transaction per fetch) on the same event"
        " loop, and faust's consumer thread, stream machinery and table changelog buffer per"
        " record: the profile shows their shares."
    )
    if ctx.profile:
        result.notes.append(
            "py-spy sampled the faust worker (100 Hz, non-blocking) while it was measured;"
            " its own CPU competes on a small machine: --no-profile gives a clean figure."
        )
    return [result]
