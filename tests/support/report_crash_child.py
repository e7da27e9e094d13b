"""A projection store that halts inside a batch's transaction, for a kill -9 test.

``python -m tests.support.report_crash_child DSN RECORDS STOP_AT`` stores the records
(JSON, a list of stage outputs) up to ``STOP_AT`` in one committed batch, then stores the
rest as a second batch and halts for good in the middle of its transaction: after the
rows are written and the report figures of the people they touch are taken away, before
those figures are added again. It prints ``halted`` there; the test kills it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import funnel_stage_engine.read.projection_store as store_module
from funnel_shared.events import AnyStageOutput, StageOutput
from funnel_stage_engine.read.projection_store import ProjectionStore
from pydantic import TypeAdapter

RECORDS: TypeAdapter[list[AnyStageOutput]] = TypeAdapter(list[StageOutput])


async def main(dsn: str, path: str, stop_at: int) -> None:
    records = RECORDS.validate_json(Path(path).read_bytes())
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    store = ProjectionStore(pool)
    await store.apply(records[:stop_at])
    original = store_module._apply_runs

    async def halting(connection: asyncpg.Connection, outputs: Sequence[AnyStageOutput]) -> None:
        await original(connection, outputs)
        print("halted", flush=True)
        await asyncio.Event().wait()  # Until killed.

    store_module._apply_runs = halting
    await store.apply(records[stop_at:])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
