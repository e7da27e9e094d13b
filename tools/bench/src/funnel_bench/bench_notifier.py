"""Notifier: webhook deliveries/s and the scheduling delay of delayed follow-ups.

NEEDS THE NOTIFIER (issue 7). The notifier on main only stores stage changes;
its rules, dispatcher and webhook channel land with issue 7. Until then this
benchmark reports itself as skipped, and says why, rather than measuring
something else under its name.

What it will measure once issue 7 is merged (to be wired against its final
settings, rule files and migrations):
1. deliveries/s: stage-changed records for N contacts entering a stage that a
   webhook rule fires on, preloaded on the topic; the notifier (signatures on,
   follow-ups stored, offsets committed) delivers to a local aiohttp receiver
   that checks each ``webhook-signature`` and counts distinct ``webhook-id``s;
   the rate counts from the first delivery to the last, CPU per process.
2. scheduling delay: follow-ups with a short delay; due time to the receiver's
   arrival time, p50 and p99.
Target: >= 500 deliveries/s.
"""

from __future__ import annotations

import importlib.util

from funnel_bench.context import BenchContext
from funnel_bench.result import Measurement

__all__ = ["notifier_available", "run"]

REQUIRED = ("funnel_notifier.dispatcher", "funnel_notifier.rules", "funnel_notifier.signing")


def notifier_available() -> bool:
    try:
        return all(importlib.util.find_spec(name) is not None for name in REQUIRED)
    except ModuleNotFoundError:
        return False


async def run(ctx: BenchContext) -> list[Measurement]:
    if not notifier_available():
        reason = "needs the notifier's dispatcher and rules (issue 7), not on this branch yet"
    else:
        reason = (
            "the notifier is installed, but this benchmark is not wired to its settings and"
            " rule files yet: see funnel_bench/bench_notifier.py"
        )
    return [
        Measurement.skipped(
            "notifier.deliveries", "Notifier, webhook deliveries", "deliveries/s", reason
        ),
        Measurement.skipped(
            "notifier.delay", "Notifier, delayed follow-up delay p99", "ms", reason
        ),
    ]
