"""``funnel-bench``: run the benchmarks, write ``latest.json`` and ``latest.md``.

Each benchmark runs for a bounded time against the same broker, with its
baseline right after it. A benchmark that fails is reported as failed and the
others still run; one whose service is not built yet is reported as skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from funnel_bench import (
    bench_e2e,
    bench_ingest,
    bench_memory,
    bench_notifier,
    bench_report,
    bench_stage_engine,
)
from funnel_bench.context import BenchContext
from funnel_bench.load import load_tool
from funnel_bench.projection_db import projection_database
from funnel_bench.report import machine_info, write_report
from funnel_bench.result import Measurement
from funnel_bench.stack import open_stack

__all__ = ["BENCHMARKS", "main", "run_benchmarks"]

log = logging.getLogger("funnel.bench")

Benchmark = Callable[[BenchContext], Awaitable[list[Measurement]]]

BENCHMARKS: dict[str, Benchmark] = {
    "ingest": bench_ingest.run,
    "stage-engine": bench_stage_engine.run,
    "e2e": bench_e2e.run,
    "notifier": bench_notifier.run,
    "memory": bench_memory.run,
    "report": bench_report.run,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="funnel-bench", description=__doc__)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per timed phase")
    parser.add_argument(
        "--only", default="", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--load-tool", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy")
    parser.add_argument("--stage-events", type=int, default=60_000)
    parser.add_argument("--e2e-rate", type=int, default=500, help="events/s")
    parser.add_argument("--e2e-seconds", type=float, default=30.0)
    parser.add_argument("--memory-contacts", type=int, default=100_000)
    parser.add_argument(
        "--report-contacts",
        type=_sizes,
        default=(100_000, 1_000_000),
        help="comma-separated projection sizes for the report benchmark",
    )
    parser.add_argument("--report-requests", type=int, default=200, help="per figure")
    parser.add_argument(
        "--report-writes", type=int, default=6_000, help="stage changes per write-cost round"
    )
    parser.add_argument(
        "--producer-batch-size",
        type=int,
        default=16384,
        help="KAFKA_PRODUCER_MAX_BATCH_SIZE for every producer (0: keep the environment's)",
    )
    return parser


def _sizes(text: str) -> tuple[int, ...]:
    sizes = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("one or more positive sizes, e.g. 100000,1000000")
    return sizes


def _selected(only: str) -> list[str]:
    names = [name.strip() for name in only.split(",") if name.strip()] or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}")
    return names


async def _run_one(name: str, ctx: BenchContext) -> list[Measurement]:
    started = time.monotonic()
    log.info("%s: starting", name)
    try:
        results = await BENCHMARKS[name](ctx)
    except Exception as exc:
        log.error("%s failed:\n%s", name, traceback.format_exc())
        results = [Measurement.failed(name, name, "-", f"{type(exc).__name__}: {exc}")]
    log.info("%s: done in %.0f s", name, time.monotonic() - started)
    return results


def run_benchmarks(args: argparse.Namespace) -> Path:
    names = _selected(args.only)
    tool = load_tool(args.load_tool)
    machine = machine_info()
    settings = {
        "duration_s": args.duration,
        "load_tool": tool,
        "profile": not args.no_profile,
        "stage_events": args.stage_events,
        "e2e_rate": args.e2e_rate,
        "e2e_seconds": args.e2e_seconds,
        "memory_contacts": args.memory_contacts,
        "report_contacts": list(args.report_contacts),
        "report_requests": args.report_requests,
        "report_writes": args.report_writes,
        "benchmarks": ",".join(names),
    }
    with (
        tempfile.TemporaryDirectory(prefix="funnel-bench-") as tmp,
        open_stack(Path(tmp), producer_batch_size=args.producer_batch_size or None) as stack,
        projection_database(Path(tmp)) as database_url,
    ):
        settings["broker"] = "embedded (Tansu)" if stack.embedded else "KAFKA_BOOTSTRAP_SERVERS"
        settings.update(
            {k: v for k, v in stack.kafka_env.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
        )
        ctx = BenchContext(
            stack=stack,
            duration_s=args.duration,
            load_tool=tool,
            profile=not args.no_profile,
            stage_events=args.stage_events,
            e2e_rate=args.e2e_rate,
            e2e_seconds=args.e2e_seconds,
            memory_contacts=args.memory_contacts,
            database_url=database_url,
            report_contacts=args.report_contacts,
            report_requests=args.report_requests,
            report_writes=args.report_writes,
        )
        results = [r for name in names for r in asyncio.run(_run_one(name, ctx))]
    command = "funnel-bench " + shlex.join(sys.argv[1:])
    write_report(
        args.out,
        command=command.strip(),
        settings=settings,
        machine=machine,
        results=results,
        profiles=ctx.profiles,
    )
    out: Path = args.out
    return out


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    out = run_benchmarks(args)
    print((out / "latest.md").read_text())
    print(f"wrote {out / 'latest.json'} and {out / 'latest.md'}")


if __name__ == "__main__":
    main()
