"""Consume the stage-changed topic and schedule follow-ups; commit offsets only after storing.

The records of a fetched batch and everything they schedule are stored in one
transaction per partition (split only around records that are dead-lettered,
which are published after the records before them are stored). A crash between
storing and committing re-delivers the records, and the unique key on (stage
change id, rule id) absorbs the duplicates.

Two kinds of failure, told apart by the store (``RecordRefused`` or not):

- a record is bad: it does not decode, its follow-up would be due past the
  year 9999, or PostgreSQL refuses its content. When PostgreSQL refuses a run
  of records, the run is split in halves until the refused record is alone; it
  is dead-lettered to the rejected topic with the reason and the original,
  counted, and skipped; the rest is stored.
- a dependency is down (the database unreachable or read-only): the partition
  is rewound to the first unstored record and read again after a pause; nothing
  past it is committed, and ``problem`` says why (``/readyz`` shows it).

A commit that fails (the group rebalanced between storing and committing:
``CommitFailedError``, ``IllegalStateError`` for a partition no longer ours, or
any other ``KafkaError``) is logged and counted, never fatal: the records are
stored, and whoever owns the partition next re-reads them harmlessly. On
revocation, the rebalance listener waits (bounded) for the batch in hand and
commits what was stored, so the next owner re-reads as little as possible.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from funnel_shared.kafka import rejected_record
from funnel_shared.publishing import Publisher, publish

from funnel_notifier.domain.followups import Change
from funnel_notifier.domain.rules import LoadedRule
from funnel_notifier.domain.triggers import (
    Decoded,
    DueTimeOutOfRange,
    Ignored,
    Invalid,
    PlannedFollowUp,
    Trigger,
    decode,
    plan_followups,
)
from funnel_notifier.metrics import NotifierMetrics
from funnel_notifier.postgres.intake import RecordRefused, StageChangeStore

__all__ = ["StageChangeConsumer"]

log = logging.getLogger("funnel.notifier")


@dataclass(frozen=True)
class _Planned:
    index: int  # Position in the fetched batch.
    record: Any
    trigger: Trigger
    followups: list[PlannedFollowUp]


@dataclass(frozen=True)
class _Unplannable:
    errors: list[str]  # A follow-up would be due past the year 9999.


class _Progress:
    """How many records of a partition's batch are settled (stored, dead-lettered or
    skipped) and so safe to commit past."""

    def __init__(self) -> None:
        self.done = 0


class StageChangeConsumer:
    def __init__(
        self,
        *,
        consumer: AIOKafkaConsumer,
        store: StageChangeStore,
        publisher: Publisher,
        rejected_topic: str,
        retry_backoff_s: float,
        rules: list[LoadedRule] | None = None,
        metrics: NotifierMetrics | None = None,
        on_scheduled: Callable[[float], None] | None = None,
        revoke_wait_s: float = 10.0,
    ) -> None:
        self._consumer = consumer
        self._store = store
        self._publisher = publisher
        self._rejected_topic = rejected_topic
        self._retry_backoff_s = retry_backoff_s
        self._rules = rules or []
        self._metrics = metrics or NotifierMetrics()
        # Tells the dispatcher in how many seconds the earliest new follow-up is due.
        self._on_scheduled = on_scheduled
        self._revoke_wait_s = revoke_wait_s
        # Held while a partition's records are stored; the rebalance listener waits for it.
        self._handling = asyncio.Lock()
        # Next offset to commit per partition: stored, not yet known to be committed.
        self._uncommitted: dict[TopicPartition, int] = {}
        # Seen by tests, logs and /readyz.
        self.store_failures = 0  # How often storing failed for a dependency.
        self.commit_failures = 0  # How often a commit after storing failed.
        self.problem: str | None = None  # Why storing fails now; None: it works.

    @property
    def assigned(self) -> bool:
        return bool(self._consumer.assignment())

    @property
    def listener(self) -> ConsumerRebalanceListener:
        """Pass to ``subscribe``: commits what is stored when partitions are revoked."""
        return _CommitOnRevoke(self)

    async def run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=1000, max_records=500)
            for tp, records in batches.items():
                if tp not in self._consumer.assignment():
                    continue  # Revoked since the fetch: its next owner reads them.
                await self._handle_partition(tp, records)

    async def _handle_partition(self, tp: TopicPartition, records: list[Any]) -> None:
        progress = _Progress()
        failed: BaseException | None = None
        async with self._handling:
            try:
                await self._settle(records, progress)
                self.problem = None
            except Exception as exc:
                failed = exc
            if progress.done:
                self._uncommitted[tp] = records[progress.done - 1].offset + 1
        if failed is not None:
            # A dependency is down. Nothing past the last settled record is committed:
            # rewind and retry it after a pause rather than lose it.
            self.store_failures += 1
            self.problem = f"storing stage changes failed: {type(failed).__name__}: {failed}"
            offset = records[progress.done].offset
            log.warning("storing offset %s of %s failed (%s); retrying", offset, tp, failed)
            try:
                self._consumer.seek(tp, offset)
            except KafkaError as exc:  # Revoked meanwhile: the next owner reads from the commit.
                log.info("not rewinding %s: %s", tp, exc)
            await asyncio.sleep(self._retry_backoff_s)
        await self._commit({tp})

    async def _settle(self, records: list[Any], progress: _Progress) -> None:
        """Store, dead-letter or skip each record in order; ``progress`` follows."""
        run: list[_Planned] = []  # Decoded and planned, to store together.
        for index, record in enumerate(records):
            verdict = self._plan(index, record)
            if isinstance(verdict, _Planned):
                run.append(verdict)
                continue
            await self._store_run(run, progress)  # Everything before a rejection first.
            run = []
            if isinstance(verdict, _Unplannable):
                await self._reject(record, verdict.errors, "due_time_out_of_range")
            elif isinstance(verdict, Invalid):
                await self._reject(record, verdict.errors, "invalid")
            else:
                self._skip(record, verdict)
            progress.done = index + 1
        await self._store_run(run, progress)

    def _plan(self, index: int, record: Any) -> _Planned | _Unplannable | Invalid | Ignored:
        decoded = decode(record.value)
        if not isinstance(decoded, Decoded):
            return decoded
        try:
            followups = plan_followups(decoded.trigger, self._rules)
        except DueTimeOutOfRange as exc:
            return _Unplannable([str(exc)])
        return _Planned(index, record, decoded.trigger, followups)

    async def _store_run(self, run: list[_Planned], progress: _Progress) -> None:
        """Store the run in one transaction; when the database refuses a record's
        content, halve the run until that record is alone, and dead-letter it."""
        if not run:
            return
        try:
            await self._store_all(run)
        except RecordRefused as refused:
            if len(run) == 1:
                log.warning(
                    "dead-lettering offset %s of %s: %s",
                    run[0].record.offset,
                    run[0].record.topic,
                    refused.reason,
                )
                await self._reject(run[0].record, [refused.reason], "database_refused")
            else:
                half = len(run) // 2
                await self._store_run(run[:half], progress)
                await self._store_run(run[half:], progress)
                return
        progress.done = run[-1].index + 1

    async def _commit(self, tps: set[TopicPartition]) -> None:
        """Commit what is stored for ``tps``. A failure is logged, never raised: the
        records are stored, and the partition's next reader re-reads them harmlessly."""
        offsets = {tp: self._uncommitted[tp] for tp in tps if tp in self._uncommitted}
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            self.commit_failures += 1
            self._metrics.commit_failures.inc()
            log.warning(
                "committing %s failed (%s: %s); the records are stored and will be"
                " re-read by the partition's next reader",
                _describe(offsets),
                type(exc).__name__,
                exc,
            )
            return
        for tp, offset in offsets.items():
            if self._uncommitted.get(tp) == offset:
                del self._uncommitted[tp]

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Let the batch in hand finish (bounded), then commit what is stored."""
        try:
            async with asyncio.timeout(self._revoke_wait_s):
                async with self._handling:
                    await self._commit(set(revoked))
        except TimeoutError:
            log.warning(
                "partitions revoked while a batch was still being stored; its records"
                " will be re-read by their next owner"
            )
        for tp in revoked:
            self._uncommitted.pop(tp, None)

    def _skip(self, record: Any, ignored: Ignored) -> None:
        self._metrics.ignored.labels(ignored.kind).inc()
        if not ignored.known:
            log.info(
                "skipping offset %s of %s: kind %r is unknown to this version",
                record.offset,
                record.topic,
                ignored.kind,
            )

    async def _store_all(self, run: list[_Planned]) -> None:
        batch = [(item.trigger, item.followups) for item in run]
        scheduled = await self._store.record_many(batch)
        new = {followup_id for ids in scheduled for followup_id in ids}
        due = [item.due_at for _, items in batch for item in items if item.id in new]
        if due and self._on_scheduled is not None:
            self._on_scheduled((min(due) - datetime.now(UTC)).total_seconds())
        for (trigger, _), ids in zip(batch, scheduled, strict=True):
            self._metrics.followups.labels(Change.SCHEDULED).inc(len(ids))
            log.info(
                "%s %s: %s/%s %s, %d follow-up(s) scheduled",
                trigger.type,
                trigger.source_id,
                trigger.funnel,
                trigger.stage,
                trigger.contact_id,
                len(ids),
            )

    async def _reject(self, record: Any, errors: list[str], why: str) -> None:
        """Dead-letter ``record``; ``why`` labels the count (invalid, due_time_out_of_range,
        database_refused)."""
        await publish(
            self._publisher,
            self._rejected_topic,
            rejected_record(
                service="notifier",
                origin=record.topic,
                key=record.key.decode("utf-8", "backslashreplace") if record.key else None,
                original=record.value or b"",
                errors=errors,
            ),
        )
        self._metrics.rejected.labels(why).inc()


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: StageChangeConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._consumer._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass


def _describe(offsets: dict[TopicPartition, int]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]@{offset}" for tp, offset in offsets.items())
