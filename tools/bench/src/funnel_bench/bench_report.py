"""The funnel report and the contact read at N contacts, through the HTTP API.

For each size (``--report-contacts``, e.g. 100,000 and 1,000,000): the projection is
emptied, loaded straight into PostgreSQL (``report_data.py``), its aggregates built from
that history (``report_rebuild``, what an upgraded deployment does once), then the stage
engine's read app (the real FastAPI app, served by uvicorn on 127.0.0.1) answers repeated
requests: the report over all time and over 30 days, the funnel page, and contact reads
of random contacts; p50 and p95 of each. Then the projection's write cost: stage changes
stored by the projection store keeping the aggregates, and as many without them (the
code path before them), alternating rounds; the figure is stage changes per second with
the aggregates, the baseline without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import statistics
import threading
import time
import types
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta

import aiohttp
import asyncpg
import uvicorn
from funnel_devstack.processes import free_port
from funnel_shared.events import StageChanged, stage_change_id
from funnel_stage_engine.domain.definitions import load_funnels
from funnel_stage_engine.metrics import StageEngineMetrics
from funnel_stage_engine.read.projection_store import ProjectionStore
from funnel_stage_engine.read.web import create_web_app

from funnel_bench.context import BenchContext
from funnel_bench.projection_db import migrate
from funnel_bench.report_data import BASE, DAYS, STAGES, load_projection
from funnel_bench.result import Measurement

__all__ = ["run"]

FUNNEL = "lifecycle"
_TABLES = (
    "stage_history, stage_stalls, stage_blocks, contact_merges, contact_stages, report_funnels,"
    " report_reached, report_hist, report_dropped, report_current, report_blocked"
)


async def run(ctx: BenchContext) -> list[Measurement]:
    # A database of its own on the projection's server: the other benchmarks' rows stay.
    url = await _own_database(ctx.database_url)
    ctx = dataclasses.replace(ctx, database_url=url)
    sizes = sorted(ctx.report_contacts)
    results: list[Measurement] = []
    figures: dict[int, dict[str, dict[str, float]]] = {}
    for size in sizes:
        figures[size], setup = await _measure_size(ctx, size)
        results += _size_results(size, figures[size], setup, ctx.report_requests)
    if len(sizes) > 1:
        small, large = figures[sizes[0]], figures[sizes[-1]]
        results.append(
            Measurement(
                name="report.flat",
                title=f"Report p95 at {sizes[-1]:,} vs {sizes[0]:,} contacts (all time)",
                unit="x",
                figure=large["report"]["p95_ms"] / small["report"]["p95_ms"],
                target="<= 2 x",
                notes=["flat in history: the report reads O(days x stages) rows"],
            )
        )
    results.append(await _write_cost(ctx, sizes[-1]))
    return results


async def _own_database(database_url: str) -> str:
    name = "bench_report_" + uuid.uuid4().hex[:10]
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    url = f"{database_url.rpartition('/')[0]}/{name}"
    await asyncio.to_thread(migrate, url)
    return url


async def _measure_size(
    ctx: BenchContext, size: int
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    connection = await asyncpg.connect(ctx.database_url)
    try:
        await connection.execute(f"TRUNCATE {_TABLES}")
        started = time.perf_counter()
        changes = await load_projection(connection, contacts=size, funnel=FUNNEL)
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        async with connection.transaction():
            await connection.execute("SELECT report_rebuild($1, $2::text[])", FUNNEL, STAGES)
        rebuilt = time.perf_counter() - started
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    setup = {"stage_changes": changes, "load_s": loaded, "rebuild_s": rebuilt}
    with _read_app(ctx.database_url) as base_url:
        figures = await _timed_requests(base_url, size, ctx.report_requests)
    return figures, setup


def _size_results(
    size: int, figures: dict[str, dict[str, float]], setup: dict[str, float], requests: int
) -> list[Measurement]:
    settings = {"contacts": size, "requests": requests, **setup}
    titles = {
        "report": ("Report p95, all time", "<= 100 ms"),
        "report_30d": ("Report p95, a 30-day range", "<= 100 ms"),
        "contact": ("Contact read p95 (/v1/contacts/{id})", "<= 20 ms"),
        "page": ("Funnel page p95 (/funnels/lifecycle)", "<= 1000 ms"),
    }
    out = []
    for key, (title, target) in titles.items():
        figure = figures[key]
        out.append(
            Measurement(
                name=f"report.{key}.{size}",
                title=f"{title} at {size:,} contacts",
                unit="ms",
                figure=figure["p95_ms"],
                target=target,
                settings=settings,
                extra=figure,
            )
        )
    return out


@contextlib.contextmanager
def _read_app(database_url: str) -> Iterator[str]:
    """The stage engine's read app (no tokens, 127.0.0.1), served in a thread of its own."""
    port = free_port()
    projection = types.SimpleNamespace(pool=None, last_error=None, store=None, assigned=set())
    app = create_web_app(
        funnels=load_funnels(),
        projection=projection,  # type: ignore[arg-type]
        metrics=StageEngineMetrics(),
        worker_status=lambda: "",
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    ready = threading.Event()

    async def serve() -> None:
        projection.pool = await asyncpg.create_pool(database_url, min_size=2, max_size=4)
        ready.set()
        try:
            await server.serve()
        finally:
            await projection.pool.close()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="bench-read-app")
    thread.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the read app's database pool did not open in 60 s")
        deadline = time.monotonic() + 60
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)


async def _timed_requests(base_url: str, size: int, requests: int) -> dict[str, dict[str, float]]:
    rng = random.Random(19)
    since = (BASE + timedelta(days=DAYS - 60)).date()
    until = since + timedelta(days=30)
    paths: dict[str, Callable[[], str]] = {
        "report": lambda: f"/v1/funnels/{FUNNEL}/report",
        "report_30d": lambda: f"/v1/funnels/{FUNNEL}/report?since={since}&until={until}",
        "contact": lambda: f"/v1/contacts/c{rng.randint(1, size)}",
        "page": lambda: f"/funnels/{FUNNEL}",
    }
    out = {}
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(base_url, timeout=timeout) as session:
        for key, path in paths.items():
            out[key] = await _latencies(session, path, requests)
    return out


async def _latencies(
    session: aiohttp.ClientSession, path: Callable[[], str], requests: int
) -> dict[str, float]:
    async def one() -> float:
        started = time.perf_counter()
        async with session.get(path()) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"{response.url}: {response.status} {body[:300]!r}")
        return (time.perf_counter() - started) * 1000

    await one()  # Warm: the first request opens the pool's connections.
    samples = sorted([await one() for _ in range(requests)])
    return {
        "p50_ms": statistics.median(samples),
        "p95_ms": samples[max(0, round(0.95 * len(samples)) - 1)],
        "max_ms": samples[-1],
        "samples": len(samples),
    }


async def _write_cost(ctx: BenchContext, size: int) -> Measurement:
    """Stage changes per second through the projection store, aggregates on and off."""
    count = ctx.report_writes
    pool = await asyncpg.create_pool(ctx.database_url, min_size=1, max_size=2)
    stores = {True: ProjectionStore(pool), False: ProjectionStore(pool, keep_report=False)}
    on: list[float] = []
    off: list[float] = []
    try:
        for round_ in range(4):  # Alternate, so neither side gets the warmer database.
            enabled = round_ % 2 == 0
            seconds = await _store_changes(stores[enabled], count, size)
            (on if enabled else off).append(count / seconds)
    finally:
        await pool.close()
    return Measurement(
        name="report.write",
        title=f"Projection writes with the report aggregates (at {size:,} contacts)",
        unit="changes/s",
        figure=statistics.mean(on),
        baseline="as many stage changes stored without the aggregates (the code before them)",
        baseline_figure=statistics.mean(off),
        target=">= 0.5",
        settings={"stage_changes_per_round": count, "rounds_each": len(on), "batch": 500},
        extra={"on": on, "off": off},
        notes=["new contacts moving visitor -> lead -> prospect, in batches of 500"],
    )


async def _store_changes(store: ProjectionStore, count: int, size: int) -> float:
    run = uuid.uuid4().hex[:8]
    changes = [_change(f"w{run}-{i // 3}", i % 3, size) for i in range(count)]
    return await _timed(lambda: _apply_all(store, changes))


async def _apply_all(store: ProjectionStore, changes: list[StageChanged]) -> None:
    for start in range(0, len(changes), 500):
        await store.apply(changes[start : start + 500])


async def _timed(work: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await work()
    return time.perf_counter() - started


def _change(contact: str, step: int, salt: int) -> StageChanged:
    at = BASE + timedelta(days=DAYS - 30, hours=step, seconds=salt % 3600)
    message = f"{contact}:{step}"
    return StageChanged(
        id=stage_change_id(
            funnel=FUNNEL, contact_id=contact, message_id=message, to_stage=STAGES[step]
        ),
        funnel=FUNNEL,
        funnel_version="bench",
        contact_id=contact,
        from_stage=STAGES[step - 1] if step else None,
        to_stage=STAGES[step],
        furthest_stage=STAGES[step],
        rule_id=f"rule-{step}",
        cause_message_id=message,
        event_time=at,
        processed_at=at,
        traits={"email": f"{contact}@example.com"},
    )
