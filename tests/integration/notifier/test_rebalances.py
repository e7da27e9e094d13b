"""The consumer survives a rebalance between storing a batch and committing it: the failed
commit is logged and counted, and the records are re-read by the next reader, harmlessly.
Real broker, real PostgreSQL."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from funnel_shared.kafka import AiokafkaPublisher
from funnel_shared.settings import TopicSettings

from tests.integration.notifier.conftest import StartConsumer
from tests.support.notifier_support import eventually, publish_change, stage_change

pytestmark = pytest.mark.integration


def _failures() -> list[Exception]:
    """What aiokafka's ``commit`` raises when the group rebalanced under it (read in
    aiokafka 0.14's consumer and group coordinator)."""
    return [
        CommitFailedError("the group has already rebalanced"),
        IllegalStateError("Partition is not assigned"),
        RebalanceInProgressError("test group"),
        UnknownMemberIdError("test group"),
    ]


class RebalancedCommits(AIOKafkaConsumer):  # type: ignore[misc]
    """A real group member whose every commit fails as a rebalance landing between store
    and commit makes it fail, the four ways in turn."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.raised: list[str] = []

    async def commit(self, offsets: Any = None) -> None:
        failures = _failures()
        failure = failures[len(self.raised) % len(failures)]
        self.raised.append(type(failure).__name__)
        raise failure


async def _stored_all(db: asyncpg.Pool, changes: list[Any]) -> bool:
    ids = [change.id for change in changes]
    count = await db.fetchval("SELECT count(*) FROM received_stage_changes WHERE id = ANY($1)", ids)
    return bool(count == len(ids))


async def test_failed_commits_after_storing_are_survived_and_the_records_re_read_harmlessly(
    stage_change_consumer: StartConsumer,
    publisher: AiokafkaPublisher,
    topics: TopicSettings,
    db: asyncpg.Pool,
) -> None:
    group = f"test-notifier-{uuid.uuid4().hex}"
    changes: list[Any] = []
    async with stage_change_consumer(group, consumer_class=RebalancedCommits) as first:
        await eventually(lambda: first.worker.assigned, what="partitions assigned")
        # Published a few at a time, so that several stored batches meet a failing commit.
        for _ in range(4):
            batch = [stage_change(f"c-{uuid.uuid4().hex}") for _ in range(3)]
            for change in batch:
                await publish_change(publisher, topics.stage_changed, change)
            changes += batch
            sent = list(changes)
            await eventually(lambda: _stored_all(db, sent), what="the batch stored")  # noqa: B023
        raised = first.consumer.raised
        assert set(raised) >= {type(failure).__name__ for failure in _failures()}, raised
        assert first.worker.commit_failures >= len(raised) - 1  # The listener's own try too.
        assert not first.task.done()  # No crash: the loop is still consuming.
        assert await first.committed_total() == 0
        assert first.worker.store_failures == 0

    # The next member of the group re-reads what was never committed: stored once.
    async with stage_change_consumer(group) as second:

        async def committed_past_all() -> bool:
            return await second.committed_total() == len(changes)

        await eventually(committed_past_all, what="the next member committed past everything")
        assert second.worker.store_failures == 0
    rows = await db.fetch(
        "SELECT id FROM received_stage_changes WHERE id = ANY($1)", [c.id for c in changes]
    )
    assert sorted(row["id"] for row in rows) == sorted(c.id for c in changes)


async def test_a_second_member_joining_between_store_and_commit_crashes_nothing(
    stage_change_consumer: StartConsumer,
    publisher: AiokafkaPublisher,
    topics: TopicSettings,
    db: asyncpg.Pool,
) -> None:
    group = f"test-notifier-{uuid.uuid4().hex}"
    joined: list[Any] = []

    class JoinBeforeCommit(AIOKafkaConsumer):  # type: ignore[misc]
        """Before its first commit, a second real member joins and the group rebalances
        (this member's revocation commits through here too: it must not wait on itself)."""

        async def commit(self, offsets: Any = None) -> None:
            if not joined:
                joined.append(None)
                second = await stack.enter_async_context(stage_change_consumer(group))
                joined[0] = second
                await eventually(lambda: second.worker.assigned, what="the second member in")
            await super().commit(offsets)

    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(
            stage_change_consumer(group, consumer_class=JoinBeforeCommit)
        )
        await eventually(lambda: first.worker.assigned, what="partitions assigned")
        changes = [stage_change(f"c-{uuid.uuid4().hex}") for _ in range(3)]
        for change in changes:
            await publish_change(publisher, topics.stage_changed, change)
        await eventually(lambda: bool(joined) and joined[0] is not None, what="second joined")
        # Records for every partition after the rebalance: both members store their share.
        more = [stage_change(f"c-{uuid.uuid4().hex}") for _ in range(24)]
        for change in more:
            await publish_change(publisher, topics.stage_changed, change)
        changes += more
        await eventually(lambda: _stored_all(db, changes), what="every record stored")
        assert not first.task.done() and not joined[0].task.done()
        assert first.worker.store_failures == 0
    stored = await db.fetchval(
        "SELECT count(*) FROM received_stage_changes WHERE id = ANY($1)", [c.id for c in changes]
    )
    assert stored == len(changes)
