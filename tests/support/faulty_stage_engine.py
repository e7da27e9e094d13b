"""``python -m tests.support.faulty_stage_engine``: the real stage-engine worker, with faults
in its Kafka client (and faust's recovery), for crash tests against the real broker.

Environment (all optional):
- ``FAULT_CHANGELOG_REFUSE_AFTER=N``: the first N changelog records are sent; every later
  one fails as the broker would refuse it (``NotEnoughReplicasError``) and is not sent.
  With ``FAULT_COMMIT_LOG`` set, refusals also wait for the first offset commit, so the
  test always has a commit before the fault, however fast the worker ran.
- ``FAULT_CHANGELOG_DELAY_S=S``: each changelog record waits S seconds before the client
  takes it (a slow changelog: faust's buffer drains slower than its 0.1 s flush waits).
- ``FAULT_COMMIT_LOG=path``: after every successful offset commit, one JSON line
  ``{"topic:partition": offset, ...}`` is appended to ``path``.
- ``FAULT_SEEK_DELAY_S=S``: the worker's seeks to its committed offsets (faust's
  ``perform_seek``, after each recovery) take S seconds longer, as under a slow broker:
  records the worker had already asked for arrive while it seeks, with its flow stopped.
- ``FAULT_RECOVERY_END_DELAY_S=S``: faust's end of a table recovery
  (``Recovery.on_recovery_completed``: resume the input partitions, seek) starts S seconds
  late, so the fetcher has a fetch under way when it does.

Only aiokafka's client classes (and, for the last fault, faust's recovery) are wrapped; the
worker is otherwise the one users run.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import aiokafka
from aiokafka.errors import NotEnoughReplicasError

CHANGELOG_SUFFIX = "-contact_to_state-changelog"


def _append(path: str, text: str) -> None:
    with open(path, "a") as log:
        log.write(text)


def _install() -> None:
    refuse_after = os.environ.get("FAULT_CHANGELOG_REFUSE_AFTER")
    delay_s = float(os.environ.get("FAULT_CHANGELOG_DELAY_S", "0"))
    commit_log = os.environ.get("FAULT_COMMIT_LOG")
    sent = {"changelog": 0, "commits": 0}
    send = aiokafka.AIOKafkaProducer.send

    async def faulty_send(self: Any, topic: str, *args: Any, **kwargs: Any) -> Any:
        if not topic.endswith(CHANGELOG_SUFFIX):
            return await send(self, topic, *args, **kwargs)
        if delay_s:
            await asyncio.sleep(delay_s)
        sent["changelog"] += 1
        committed_once = not commit_log or sent["commits"] > 0
        if refuse_after is not None and sent["changelog"] > int(refuse_after) and committed_once:
            refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            refused.set_exception(NotEnoughReplicasError("injected by the test"))
            return refused
        return await send(self, topic, *args, **kwargs)

    aiokafka.AIOKafkaProducer.send = faulty_send  # type: ignore[method-assign]

    seek_delay_s = float(os.environ.get("FAULT_SEEK_DELAY_S", "0"))
    if seek_delay_s:
        seek_to_committed = aiokafka.AIOKafkaConsumer.seek_to_committed

        async def slow_seek_to_committed(self: Any, *partitions: Any) -> Any:
            await asyncio.sleep(seek_delay_s)
            return await seek_to_committed(self, *partitions)

        aiokafka.AIOKafkaConsumer.seek_to_committed = slow_seek_to_committed  # type: ignore[method-assign]

    recovery_end_delay_s = float(os.environ.get("FAULT_RECOVERY_END_DELAY_S", "0"))
    if recovery_end_delay_s:
        from faust.tables.recovery import Recovery

        on_recovery_completed = Recovery.on_recovery_completed

        async def late_recovery_end(self: Any, generation_id: int = 0) -> None:
            await asyncio.sleep(recovery_end_delay_s)
            await on_recovery_completed(self, generation_id)

        Recovery.on_recovery_completed = late_recovery_end  # type: ignore[method-assign]

    if commit_log:
        commit = aiokafka.AIOKafkaConsumer.commit

        async def logged_commit(self: Any, offsets: Any = None) -> Any:
            result = await commit(self, offsets)
            if offsets:
                # faust passes OffsetAndMetadata, the projection's consumer plain offsets.
                line = {
                    f"{tp.topic}:{tp.partition}": getattr(meta, "offset", meta)
                    for tp, meta in offsets.items()
                }
                _append(commit_log, json.dumps(line) + "\n")
                if any(hasattr(meta, "offset") for meta in offsets.values()):
                    sent["commits"] += 1  # The worker's (faust's), not the projection's.
            return result

        aiokafka.AIOKafkaConsumer.commit = logged_commit  # type: ignore[method-assign]


if __name__ == "__main__":
    _install()
    from funnel_stage_engine.main import main

    main()
