"""The ``kafka`` action: a follow-up task event on a topic, for another system to act on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from funnel_shared.events import FollowUpTask
from funnel_shared.kafka import encode_model
from funnel_shared.publishing import Publisher, publish

from funnel_notifier.channels import Delivery, Outcome

__all__ = ["KafkaTaskChannel"]


class KafkaTaskChannel:
    def __init__(self, *, publisher: Publisher, topic: str, task: str) -> None:
        self._publisher = publisher
        self._topic = topic
        self._task = task

    async def deliver(self, delivery: Delivery, *, timeout_s: float) -> Outcome:
        task = FollowUpTask(
            id=delivery.followup_id,
            task=self._task,
            rule_id=delivery.rule_id,
            funnel=delivery.funnel,
            contact_id=delivery.contact_id,
            stage=delivery.stage,
            stage_change_id=delivery.stage_change_id,
            trigger=delivery.record,
        )
        record = encode_model(
            task,
            key=delivery.contact_id,
            event_id=delivery.followup_id,
            event_type="funnel.followup_task",
            source="/funnel/notifier",
            time=datetime.now(UTC),
        )
        try:
            await asyncio.wait_for(publish(self._publisher, self._topic, record), timeout_s)
        except Exception as exc:  # Any broker trouble is worth another try.
            return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}")
        return Outcome(ok=True)
