"""A fast local webhook receiver for the notifier benchmark, run as its own process.

``python -m funnel_bench.webhook_receiver --port P``: answers every POST with
200 and keeps, per distinct ``webhook-id``, the rule id, the stage change's
event time and the wall-clock arrival time. ``GET /stats`` returns them;
``POST /reset`` forgets them between phases. It does not check signatures
(the notifier's tests do, with an independent implementation): the bench wants
the receiver to cost as little as possible, so that it measures the sender.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from aiohttp import web

__all__ = ["main"]

Arrival = tuple[str, str | None, float]  # rule id, the change's eventTime, arrived (epoch s)


def _app() -> web.Application:
    arrivals: dict[str, Arrival] = {}
    posts = [0]

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        arrived = time.time()
        posts[0] += 1
        webhook_id = request.headers.get("webhook-id", "")
        if webhook_id and webhook_id not in arrivals:
            payload: dict[str, Any] = json.loads(body)
            rule = str(payload.get("data", {}).get("rule", {}).get("id", ""))
            arrivals[webhook_id] = (rule, payload.get("timestamp"), arrived)
        return web.Response(status=200)

    async def stats(request: web.Request) -> web.Response:
        times = [arrived for _, _, arrived in arrivals.values()]
        summary: dict[str, Any] = {
            "unique": len(arrivals),
            "posts": posts[0],
            "first": min(times, default=None),
            "last": max(times, default=None),
        }
        if request.query.get("detail"):
            summary["arrivals"] = list(arrivals.values())
        return web.json_response(summary)

    async def reset(request: web.Request) -> web.Response:
        arrivals.clear()
        posts[0] = 0
        return web.Response(status=204)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="funnel-bench-webhook-receiver")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
