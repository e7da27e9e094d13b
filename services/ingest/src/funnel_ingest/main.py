"""``funnel-ingest``: run the ingest HTTP service."""

from __future__ import annotations

import argparse
import gc
import logging
from collections.abc import Sequence

import uvicorn
from funnel_shared.cli import command_line
from funnel_shared.settings import KafkaSettings, TopicSettings

from funnel_ingest.app import create_app
from funnel_ingest.settings import IngestSettings

DESCRIPTION = """Serve the Segment-compatible tracking API (/v1/track, /v1/batch, ...).
Answers 2xx once the broker acknowledged every accepted message, else 503.
Configured by environment variables only."""


def main(argv: Sequence[str] | None = None) -> None:
    status = command_line(
        prog="funnel-ingest",
        description=DESCRIPTION,
        serve=serve,
        settings=[IngestSettings, KafkaSettings, TopicSettings],
        argv=argv,
    )
    raise SystemExit(status)


def serve(_: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = IngestSettings()
    app = create_app(settings=settings, kafka=KafkaSettings(), topics=TopicSettings())
    # The tens of thousands of objects built so far (schemas, routes, modules) live as long
    # as the process: keep them out of the collector's scans, which cost ~9% of a batch.
    gc.collect()
    gc.freeze()
    # Client addresses come from INGEST_TRUSTED_PROXIES alone, not uvicorn's own
    # X-Forwarded-For handling (which trusts 127.0.0.1 by default).
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", proxy_headers=False)


if __name__ == "__main__":
    main()
