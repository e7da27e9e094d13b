"""The ingest app served by uvicorn on a free 127.0.0.1 port, in a background thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from funnel_devstack.processes import free_port
from funnel_ingest.app import create_app
from funnel_ingest.settings import IngestSettings
from funnel_shared.settings import KafkaSettings, TopicSettings
from pydantic import SecretStr


@contextmanager
def serve_ingest(
    *, kafka: KafkaSettings, topics: TopicSettings, write_keys: dict[str, str], **settings: Any
) -> Iterator[str]:
    """Yield the base URL; stop the server (and its producer) on the way out."""
    ingest = IngestSettings(
        write_keys={name: SecretStr(key) for name, key in write_keys.items()}, **settings
    )
    app = create_app(settings=ingest, kafka=kafka, topics=topics)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws="none", proxy_headers=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"ingest-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the ingest test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
