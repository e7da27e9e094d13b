"""The fallback load generator (``python -m funnel_bench.loadgen``) when wrk is missing.

Same contract as the wrk script: N keep-alive connections post one body for a
fixed time, then one ``BENCH-JSON`` line with the totals.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import aiohttp

MARKER = "BENCH-JSON "


async def _worker(
    session: aiohttp.ClientSession, url: str, body: bytes, until: float, totals: dict[str, int]
) -> None:
    while time.monotonic() < until:
        try:
            async with session.post(url, data=body) as response:
                await response.read()
                totals["requests"] += 1
                if response.status >= 400:
                    totals["non2xx"] += 1
        except aiohttp.ClientError:
            totals["socket_errors"] += 1


async def _run(args: argparse.Namespace) -> dict[str, int]:
    body = Path(args.body_file).read_bytes()
    headers = dict(h.split(": ", 1) for h in args.header)
    totals = {"requests": 0, "non2xx": 0, "socket_errors": 0}
    connector = aiohttp.TCPConnector(limit=args.connections)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        started = time.monotonic()
        until = started + args.duration
        await asyncio.gather(
            *(_worker(session, args.url, body, until, totals) for _ in range(args.connections))
        )
        totals["duration_us"] = int((time.monotonic() - started) * 1e6)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--header", action="append", default=[])
    totals = asyncio.run(_run(parser.parse_args()))
    print(MARKER + json.dumps(totals), flush=True)


if __name__ == "__main__":
    main()
