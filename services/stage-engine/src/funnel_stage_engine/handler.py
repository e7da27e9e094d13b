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

Identity and stalls use the same order. Records on the internal command topic
(``commands.py``) are handled by ``handle_command``: a link is decided on the
anonymous contact's partition, whose state then travels to the identified
contact in a transfer (sent before the anonymous state is marked merged); a
tick fires due stalls. See the README, "Identity" and "Stalls".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from funnel_shared.events import (
    ContactEvent,
    ContactMerged,
    StageBlocked,
    StageChanged,
    StageStalled,
)
from funnel_shared.kafka import OutboundRecord, Publisher, encode_model, publish, rejected_record
from funnel_shared.settings import TopicSettings
from pydantic import ValidationError

from funnel_stage_engine import engine
from funnel_stage_engine.commands import Forward, Link, Tick, Transfer, decode_command
from funnel_stage_engine.definitions import Funnel
from funnel_stage_engine.identity import (
    LINKED_LIMIT,
    link_verdict,
    links_to_request,
    merge,
    usable_id,
)
from funnel_stage_engine.metrics import Outcome, StageEngineMetrics
from funnel_stage_engine.stalls import advance, next_deadline

__all__ = ["SOURCE", "ContactEventHandler", "DeadlineListener", "StateStore", "encode_output"]

log = logging.getLogger("funnel.stage_engine")

SOURCE = "/funnel/stage-engine"
SERVICE = "stage-engine"

Evaluate = Callable[..., engine.Evaluation]


class StateStore(Protocol):
    """Per-contact engine state, as JSON-able values (the faust table in production)."""

    def get(self, contact_id: str) -> Mapping[str, Any] | None: ...

    def set(self, contact_id: str, state: dict[str, Any]) -> None: ...


class DeadlineListener(Protocol):
    """Told each contact's earliest stall deadline whenever its state is stored."""

    def note(self, contact_id: str, deadline: datetime | None) -> None: ...

    def saw(self, contact_id: str, event_time: datetime) -> None: ...


class _NoDeadlines:
    def note(self, contact_id: str, deadline: datetime | None) -> None:
        return None

    def saw(self, contact_id: str, event_time: datetime) -> None:
        return None


def encode_output(output: engine.StageOutput) -> OutboundRecord:
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
    commands_topic: str = "funnel-stage-engine-contact-commands"
    deadlines: DeadlineListener = field(default_factory=_NoDeadlines)
    evaluate: Evaluate = engine.evaluate
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    dedupe_window: int = engine.DEFAULT_DEDUPE_WINDOW

    async def handle(self, *, key: bytes | None, value: bytes) -> Outcome:
        """Process one record of the contact-events topic. Returns once it is safe to ack."""
        try:
            event = ContactEvent.model_validate_json(value)
        except ValidationError as exc:
            return await self._reject(key, value, exc, reason="invalid_event")
        try:
            contact_id = event.contact_key
            self.deadlines.saw(contact_id, event.timestamp)
            state = engine.ContactState.from_json(self.states.get(contact_id))
            if state.merged_into is not None and usable_id(event.user_id) is None:
                # This anonymous contact was merged: the event counts for its owner.
                forward = Forward(user_id=state.merged_into, event=event)
                await self._command(state.merged_into, forward)
                self.metrics.events_processed.labels("forwarded").inc()
                return "forwarded"
            return await self._evaluate(contact_id, state, event)
        except _PublishFailed as failed:
            raise failed.cause from None
        except Exception as exc:  # A rule that trips on this event must not stop the partition.
            return await self._reject(key, value, exc, reason="evaluation_failed")

    async def handle_command(self, *, key: bytes | None, value: bytes) -> Outcome:
        """Process one record of the internal command topic (link, transfer, forward, tick)."""
        try:
            command = decode_command(value)
        except ValidationError as exc:
            return await self._reject(key, value, exc, reason="invalid_command")
        try:
            if isinstance(command, Forward):
                self.deadlines.saw(command.user_id, command.event.timestamp)
                state = engine.ContactState.from_json(self.states.get(command.user_id))
                return await self._evaluate(command.user_id, state, command.event)
            if isinstance(command, Link):
                return await self._link(command, key, value)
            if isinstance(command, Transfer):
                return await self._transfer(command)
            return await self._tick(command)
        except _PublishFailed as failed:
            raise failed.cause from None
        except Exception as exc:
            return await self._reject(key, value, exc, reason="evaluation_failed")

    async def _evaluate(
        self, contact_id: str, state: engine.ContactState, event: ContactEvent
    ) -> Outcome:
        result = self.evaluate(
            state, event, funnels=self.funnels, processed_at=self.clock(), contact_id=contact_id
        )
        links = links_to_request(result.state, event, contact_id)
        result.state.linked = [*result.state.linked, *links][-LINKED_LIMIT:]
        records = [encode_output(output) for output in result.outputs]
        await self._publish_outputs(records)
        for anonymous_id in links:
            link = Link(
                anonymous_id=anonymous_id,
                user_id=contact_id,
                message_id=event.message_id,
                event_time=event.timestamp,
            )
            await self._command(anonymous_id, link)
        # Only now, with every output acknowledged, may the new state be stored.
        # Stored even when unchanged: it re-sends a changelog record that a crash may have lost.
        self._store(contact_id, result.state)
        return self._count(result.outputs)

    async def _link(self, link: Link, key: bytes | None, value: bytes) -> Outcome:
        state = engine.ContactState.from_json(self.states.get(link.anonymous_id))
        verdict, reason = link_verdict(state, anonymous_id=link.anonymous_id, user_id=link.user_id)
        if verdict == "duplicate":
            return "unchanged"
        if verdict == "reject":
            return await self._reject(key, value, ValueError(reason), reason="link_rejected")
        transfer = Transfer(
            anonymous_id=link.anonymous_id,
            user_id=link.user_id,
            message_id=link.message_id,
            event_time=link.event_time,
            state=state.to_json(),
        )
        await self._command(link.user_id, transfer)
        # The anonymous contact shrinks to a pointer at its owner (its deadlines went along).
        self._store(link.anonymous_id, engine.ContactState(merged_into=link.user_id))
        return "unchanged"

    async def _transfer(self, transfer: Transfer) -> Outcome:
        target = engine.ContactState.from_json(self.states.get(transfer.user_id))
        state, outputs = merge(
            target,
            engine.ContactState.from_json(transfer.state),
            contact_id=transfer.user_id,
            merged_contact_id=transfer.anonymous_id,
            cause_message_id=transfer.message_id,
            event_time=transfer.event_time,
            funnels=self.funnels,
            processed_at=self.clock(),
            dedupe_window=self.dedupe_window,
        )
        await self._publish_outputs([encode_output(output) for output in outputs])
        self._store(transfer.user_id, state)
        return self._count(outputs)

    async def _tick(self, tick: Tick) -> Outcome:
        before = engine.ContactState.from_json(self.states.get(tick.contact_id))
        state, outputs = advance(
            before,
            contact_id=tick.contact_id,
            now=tick.now,
            funnels=self.funnels,
            processed_at=self.clock(),
        )
        await self._publish_outputs([encode_output(output) for output in outputs])
        if state != before:
            self._store(tick.contact_id, state)
        else:
            self.deadlines.note(tick.contact_id, next_deadline(state))
        return self._count(outputs)

    def _store(self, contact_id: str, state: engine.ContactState) -> None:
        self.states.set(contact_id, state.to_json())
        self.deadlines.note(contact_id, next_deadline(state))

    async def _publish_outputs(self, records: Sequence[OutboundRecord]) -> None:
        try:
            for record in records:
                await publish(self.publisher, self.topics.stage_changed, record)
        except Exception as exc:
            raise _PublishFailed(exc) from exc

    async def _command(self, contact_id: str, command: Link | Transfer | Forward | Tick) -> None:
        try:
            await self.publisher.publish(
                self.commands_topic,
                key=contact_id,
                value=command.model_dump_json().encode(),
                headers=[],
            )
        except Exception as exc:
            raise _PublishFailed(exc) from exc

    def _count(self, outputs: Sequence[engine.StageOutput]) -> Outcome:
        changed = False
        for output in outputs:
            if isinstance(output, StageChanged):
                changed = True
                self.metrics.stage_changes.labels(output.funnel, output.to_stage).inc()
            elif isinstance(output, StageBlocked):
                self.metrics.stage_blocked.labels(output.funnel, output.attempted_stage).inc()
            elif isinstance(output, StageStalled):
                self.metrics.stalls.labels(output.funnel, output.stage).inc()
            elif isinstance(output, ContactMerged):
                self.metrics.merges.labels(output.funnel).inc()
        outcome: Outcome = "changed" if changed else "unchanged"
        self.metrics.events_processed.labels(outcome).inc()
        return outcome

    async def _reject(
        self, key: bytes | None, value: bytes, exc: Exception, *, reason: str
    ) -> Outcome:
        text_key = key.decode("utf-8", "backslashreplace") if key is not None else None
        log.warning("rejecting record (key %r, %s): %s", text_key, reason, exc)
        origin = self.topics.contact_events
        if reason in ("invalid_command", "link_rejected"):
            origin = self.commands_topic
        record = rejected_record(
            service=SERVICE,
            origin=origin,
            key=text_key,
            original=value,
            errors=[f"{type(exc).__name__}: {exc}"],
        )
        await publish(self.publisher, self.topics.rejected, record)
        self.metrics.rejected.labels(reason).inc()
        self.metrics.events_processed.labels("rejected").inc()
        return "rejected"


class _PublishFailed(Exception):
    """A publish failed: not the record's fault, so it propagates instead of a dead letter."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause
