"""A migrated database for the stage engine's projection, for the whole run.

The stage engine's read side (its projection into PostgreSQL) runs in the worker
process, and the worker is ready only once that projection is connected. The
benchmarks measure the worker as it runs in production, so it gets a real database.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from funnel_devstack.postgres import EmbeddedPostgres
from funnel_devstack.processes import free_port

from funnel_bench.notifier_parts import _create_database
from funnel_bench.procs import entry_point

__all__ = ["migrate", "projection_database"]


@contextmanager
def projection_database(workdir: Path) -> Iterator[str]:
    """A database URL with the stage engine's tables: DATABASE_URL's server, else embedded."""
    if "DATABASE_URL" in os.environ:
        admin = os.environ["DATABASE_URL"]
        name = "bench_projection_" + uuid.uuid4().hex[:10]
        asyncio.run(_create_database(admin, name))
        url = f"{admin.rpartition('/')[0]}/{name}"
        migrate(url)
        yield url
        return
    data_dir = workdir / "projection-postgres"
    with EmbeddedPostgres(data_dir=data_dir, port=free_port(), durable=False) as postgres:
        url = postgres.dsn()
        migrate(url)
        yield url


def migrate(url: str) -> None:
    subprocess.run(
        [entry_point("funnel-stage-engine"), "migrate"],
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        capture_output=True,
        timeout=120,
    )
