"""The contact-state table, whose changelog writes the agent awaits before it acks records.

Faust sends a table's changelog records through its producer buffer and never
awaits them: a failed send is only logged, and its flush before an offset
commit gives up after 0.1 s without progress, so a commit could overtake a
state write. Here every changelog send's future (faust's public
``Table.send_changelog`` returns it; it resolves on the broker's ack, or fails)
is kept until ``written()`` awaits it. The agent awaits ``written()`` after each
batch and acks the batch's records only then, so faust's commit (which covers
only acked records) never covers a record whose state is not acknowledged by the
broker with ``acks=all``. A failed or overdue write raises ``StateNotWritten``:
the agent stops the worker before any later commit.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.types import FutureMessage

__all__ = ["DurableTable", "StateNotWritten"]


class StateNotWritten(RuntimeError):
    """A contact state's changelog record was refused by the broker, or not acknowledged in time."""


class DurableTable(faust.Table[Any, Any]):
    """A faust table whose changelog sends can be awaited (``written``)."""

    _unacknowledged: list[FutureMessage] | None = None

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> FutureMessage:
        future: FutureMessage = super().send_changelog(
            partition, key, value, key_serializer, value_serializer
        )
        if self._unacknowledged is None:
            self._unacknowledged = []
        self._unacknowledged.append(future)
        return future

    @property
    def unacknowledged(self) -> int:
        """Changelog records sent since the last ``written()``."""
        return len(self._unacknowledged or ())

    async def written(self, *, timeout_s: float) -> int:
        """Wait until every changelog record sent so far is acknowledged; return how many.

        Raises ``StateNotWritten`` if one failed or they are not all acknowledged within
        ``timeout_s``.
        """
        pending, self._unacknowledged = self._unacknowledged or [], []
        if not pending:
            return 0
        done, late = await asyncio.wait(pending, timeout=timeout_s)
        if late:
            raise StateNotWritten(
                f"{len(late)} of {len(pending)} contact states were not acknowledged by the"
                f" broker within {timeout_s:g}s"
            )
        for future in done:
            error = future.exception()
            if error is not None:
                raise StateNotWritten(
                    f"the broker refused a contact state's changelog record: {error!r}"
                ) from error
        return len(pending)
