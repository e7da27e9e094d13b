"""Per-event processing: decode, evaluate, publish and wait for the ack, then store.

Crash safety without Kafka transactions rests on the order of the last two
steps. The outputs of an event are sent and acknowledged by the broker
*before* the contact's new state is written to the table (whose changelog
record is sent after that, and flushed before any offset commit). So the
changelog never holds a state whose transitions were not acknowledged. A
crash at any point re-delivers the events whose offsets were not committed;
replaying one either finds its messageId already in the state (no output) or
recomputes the same outputs from the same state, with the same deterministic
ids. Duplicates are possible (at-least-once); a transition under a new id is not.

A failure to *publish* is not the event's fault and is not dead-lettered: it
propagates, and the caller stops the worker without acknowledging the event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from funnel_shared.events import ContactEvent, StageBlocked, StageChanged
from funnel_shared.kafka import OutboundRecord, Publisher, encode_model, publish, rejected_record
from funnel_shared.settings import TopicSettings
from pydantic import ValidationError

from funnel_stage_engine import engine
from funnel_stage_engine.definitions import Funnel
from funnel_stage_engine.metrics import Outcome, StageEngineMetrics

__all__ = ["SOURCE", "ContactEventHandler", "StateStore", "encode_output"]

log = logging.getLogger("funnel.stage_engine")

SOURCE = "/funnel/stage-engine"
SERVICE = "stage-engine"

Evaluate = Callable[..., engine.Evaluation]


class StateStore(Protocol):
    """Per-contact engine state, as JSON-able values (the faust table in production)."""

    def get(self, contact_id: str) -> Mapping[str, Any] | None: ...

    def set(self, contact_id: str, state: dict[str, Any]) -> None: ...


def encode_output(output: StageChanged | StageBlocked) -> OutboundRecord:
    """A stage change or a refused skip as a record keyed by contact, ``ce_id`` = its id."""
    return encode_model(
        output,
        key=output.contact_id,
        event_id=output.id,
        event_type=f"funnel.{output.kind}",
        source=SOURCE,
        time=output.processed_at,
    )


@dataclass
class ContactEventHandler:
    funnels: Sequence[Funnel]
    states: StateStore
    publisher: Publisher
    topics: TopicSettings
    metrics: StageEngineMetrics
    evaluate: Evaluate = engine.evaluate
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    async def handle(self, *, key: bytes | None, value: bytes) -> Outcome:
        """Process one record of the contact-events topic. Returns once it is safe to ack."""
        try:
            event = ContactEvent.model_validate_json(value)
        except ValidationError as exc:
            return await self._reject(key, value, exc, reason="invalid_event")
        try:
            contact_id = event.contact_key
            state = engine.ContactState.from_json(self.states.get(contact_id))
            result = self.evaluate(state, event, funnels=self.funnels, processed_at=self.clock())
            records = [encode_output(output) for output in result.outputs]
        except Exception as exc:  # A rule that trips on this event must not stop the partition.
            return await self._reject(key, value, exc, reason="evaluation_failed")
        for record in records:
            await publish(self.publisher, self.topics.stage_changed, record)
        # Only now, with every output acknowledged, may the new state be stored.
        # Stored even when unchanged: it re-sends a changelog record that a crash may have lost.
        self.states.set(contact_id, result.state.to_json())
        return self._count(result.outputs)

    def _count(self, outputs: Sequence[StageChanged | StageBlocked]) -> Outcome:
        changed = False
        for output in outputs:
            if isinstance(output, StageChanged):
                changed = True
                self.metrics.stage_changes.labels(output.funnel, output.to_stage).inc()
            else:
                self.metrics.stage_blocked.labels(output.funnel, output.attempted_stage).inc()
        outcome: Outcome = "changed" if changed else "unchanged"
        self.metrics.events_processed.labels(outcome).inc()
        return outcome

    async def _reject(
        self, key: bytes | None, value: bytes, exc: Exception, *, reason: str
    ) -> Outcome:
        text_key = key.decode("utf-8", "backslashreplace") if key is not None else None
        log.warning("rejecting event (key %r, %s): %s", text_key, reason, exc)
        record = rejected_record(
            service=SERVICE,
            origin=self.topics.contact_events,
            key=text_key,
            original=value,
            errors=[f"{type(exc).__name__}: {exc}"],
        )
        await publish(self.publisher, self.topics.rejected, record)
        self.metrics.rejected.labels(reason).inc()
        self.metrics.events_processed.labels("rejected").inc()
        return "rejected"
