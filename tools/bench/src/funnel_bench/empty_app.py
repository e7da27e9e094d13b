"""The baseline for single events: an empty FastAPI endpoint, served like ``funnel-ingest``.

Same server settings as ingest's ``main()``: uvicorn, one worker, log level
info (access log on), ``proxy_headers=False``, and the start-up objects frozen
out of the garbage collector's scans (``gc.freeze()``) as ingest does. It reads
the body and answers.
"""

from __future__ import annotations

import argparse
import gc

import uvicorn
from fastapi import FastAPI, Request

__all__ = ["create_app", "main"]


def create_app() -> FastAPI:
    app = FastAPI(title="empty endpoint")

    @app.post("/v1/track")
    async def track(request: Request) -> dict[str, bool]:
        await request.body()
        return {"success": True}

    @app.get("/readyz")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = create_app()
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="info", proxy_headers=False)


if __name__ == "__main__":
    main()
