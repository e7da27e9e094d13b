"""The publisher seam: buffer every record, then await the acks together."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from funnel_shared.publishing import OutboundRecord, publish, publish_all

from tests.support.fake_publisher import FakePublisher


def _record(key: str) -> OutboundRecord:
    return OutboundRecord(key=key, value=f'{{"k":"{key}"}}'.encode(), headers=[("ce_id", b"1")])


async def test_every_record_is_acknowledged_in_the_order_sent() -> None:
    publisher = FakePublisher()
    acks = await publish_all(publisher, [("a", _record("1")), ("b", _record("2"))])
    assert acks.outcomes == [None, None] and acks.failures == []
    acks.raise_first()
    assert [(topic, key) for topic, key, _, _ in publisher.sent] == [("a", "1"), ("b", "2")]
    assert publisher.on("b") == [("b", "2", b'{"k":"2"}', {"ce_id": "1"})]


async def test_each_record_has_its_own_outcome() -> None:
    publisher = FakePublisher()
    publisher.fail_with, publisher.fail_topic = TimeoutError("no ack"), "b"
    acks = await publish_all(publisher, [("a", _record("1")), ("b", _record("2"))])
    assert acks.outcomes[0] is None
    assert isinstance(acks.outcomes[1], TimeoutError)
    assert acks.failures == [acks.outcomes[1]]
    with pytest.raises(TimeoutError, match="no ack"):
        acks.raise_first()


async def test_all_records_are_buffered_before_any_ack_is_awaited() -> None:
    publisher = FakePublisher()
    publisher.hold = asyncio.Event()
    task = asyncio.create_task(publish_all(publisher, [("a", _record(str(n))) for n in range(3)]))
    await asyncio.sleep(0)
    assert (publisher.buffered, publisher.sent) == (3, [])
    publisher.hold.set()
    assert (await task).outcomes == [None, None, None]
    assert len(publisher.on("a")) == 3


async def test_a_send_refused_midway_is_raised_and_earlier_outcomes_are_retrieved() -> None:
    publisher = FakePublisher()
    publisher.fail_with = ConnectionError("broker gone")  # The buffered ones fail too.
    publisher.refuse_with, publisher.refuse_after = BufferError("buffer full"), 2
    unretrieved: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: unretrieved.append(context))
    try:
        refused = False
        try:  # Not pytest.raises: its traceback would keep the futures alive.
            await publish_all(publisher, [("a", _record(str(n))) for n in range(4)])
        except BufferError:
            refused = True
        assert refused and publisher.buffered == 2
        publisher.refuse_with = None  # Its traceback holds publish_all's frame.
        await asyncio.sleep(0)
        gc.collect()  # A future whose exception nobody retrieved complains when collected.
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert unretrieved == []


async def test_publish_sends_one_record_and_waits_for_its_ack() -> None:
    publisher = FakePublisher()
    await publish(publisher, "a", _record("1"))
    assert len(publisher.sent) == 1
    publisher.fail_with = ConnectionError("down")
    with pytest.raises(ConnectionError):
        await publish(publisher, "a", _record("2"))
