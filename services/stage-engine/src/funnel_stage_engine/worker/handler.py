"""Batch processing: decode and evaluate each record, publish everything, wait, then store.

Crash safety without Kafka transactions rests on the order of the last two
steps. The outputs of a batch of records are sent and acknowledged by the
broker *before* any contact's new state from that batch is written to the
table (whose changelog record is sent after that, and flushed before any
offset commit). So the changelog never holds a state whose transitions were
not acknowledged. A crash at any point re-delivers the records whose offsets
were not committed; replaying one either finds its messageId already in the
state (no output) or recomputes the same outputs from the same state, with the
same deterministic ids. Duplicates are possible (at-least-once); a transition
under a new id is not. Within a batch, a record sees the states that earlier
records produced (``batch.py``), so one batch yields what the same records
would yield one at a time.

A failure to *publish* is not a record's fault and is not dead-lettered: it
propagates, nothing of the batch is stored, and the caller stops the worker
without acknowledging any of its records.

Identity and stalls use the same order. Records on the internal command topic
(``commands.py``) are commands: a link is decided on the anonymous contact's
partition, whose state then travels to the identified contact in a transfer
(sent before the anonymous state is marked merged); a tick fires due stalls.
See the README, "Identity" and "Stalls".
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
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
from funnel_shared.kafka import OutboundRecord, encode_model, rejected_record
from funnel_shared.settings import TopicSettings
from pydantic import ValidationError

from funnel_stage_engine.domain import engine
from funnel_stage_engine.domain.commands import Forward, Link, Tick, Transfer, decode_command
from funnel_stage_engine.domain.definitions import Funnel
from funnel_stage_engine.domain.identity import (
    LINKED_LIMIT,
    link_verdict,
    links_to_request,
    merge,
    usable_id,
)
from funnel_stage_engine.domain.stalls import advance, next_deadline
from funnel_stage_engine.metrics import Outcome, StageEngineMetrics
from funnel_stage_engine.worker.batch import Batch, BatchPublisher, Inbound, StateStore, Tally

__all__ = [
    "SOURCE",
    "ContactEventHandler",
    "DeadlineListener",
    "Inbound",
    "StateStore",
    "encode_output",
]

log = logging.getLogger("funnel.stage_engine")

SOURCE = "/funnel/stage-engine"
SERVICE = "stage-engine"

Evaluate = Callable[..., engine.Evaluation]


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
    publisher: BatchPublisher
    topics: TopicSettings
    metrics: StageEngineMetrics
    commands_topic: str = "funnel-stage-engine-contact-commands"
    deadlines: DeadlineListener = field(default_factory=_NoDeadlines)
    evaluate: Evaluate = engine.evaluate
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    dedupe_window: int = engine.DEFAULT_DEDUPE_WINDOW

    async def handle_batch(self, records: Sequence[Inbound]) -> list[Outcome]:
        """Process records in order. Returns once it is safe to ack them all; raises if
        a publish failed, having stored nothing."""
        batch = Batch(self.states)
        for record in records:
            batch.begin(record.origin)
            try:
                tally = (
                    self._command(batch, record) if record.command else self._event(batch, record)
                )
            except Exception as exc:  # A rule that trips on a record must not stop the partition.
                batch.discard()
                tally = self._reject(batch, record, exc, reason="evaluation_failed")
            batch.commit(tally)
        await self.publisher.publish_all(batch.outbound)
        # Only now, with every output acknowledged, may the new states be stored.
        # Stored even when unchanged: it re-sends a changelog record that a crash may have lost.
        for contact_id, state, origin, store in batch.kept():
            if store:
                self.states.set(contact_id, state.to_json(), origin=origin)
            self.deadlines.note(contact_id, next_deadline(state))
        return self._count(batch.tallies)

    async def handle(self, *, key: bytes | None, value: bytes) -> Outcome:
        """One record of the contact-events topic, as a batch of one."""
        [outcome] = await self.handle_batch([Inbound(key=key, value=value)])
        return outcome

    async def handle_command(self, *, key: bytes | None, value: bytes) -> Outcome:
        """One record of the internal command topic, as a batch of one."""
        [outcome] = await self.handle_batch([Inbound(key=key, value=value, command=True)])
        return outcome

    def _event(self, batch: Batch, record: Inbound) -> Tally:
        try:
            event = ContactEvent.model_validate_json(record.value)
        except ValidationError as exc:
            return self._reject(batch, record, exc, reason="invalid_event")
        contact_id = event.contact_key
        self.deadlines.saw(contact_id, event.timestamp)
        state = batch.state(contact_id)
        if state.merged_into is not None and usable_id(event.user_id) is None:
            # This anonymous contact was merged: the event counts for its owner.
            self._send_command(
                batch, state.merged_into, Forward(user_id=state.merged_into, event=event)
            )
            return Tally("forwarded")
        return self._evaluate(batch, contact_id, state, event)

    def _command(self, batch: Batch, record: Inbound) -> Tally:
        try:
            command = decode_command(record.value)
        except ValidationError as exc:
            return self._reject(batch, record, exc, reason="invalid_command")
        if isinstance(command, Forward):
            self.deadlines.saw(command.user_id, command.event.timestamp)
            state = batch.state(command.user_id)
            return self._evaluate(batch, command.user_id, state, command.event)
        if isinstance(command, Link):
            return self._link(batch, record, command)
        if isinstance(command, Transfer):
            return self._transfer(batch, command)
        return self._tick(batch, command)

    def _evaluate(
        self, batch: Batch, contact_id: str, state: engine.ContactState, event: ContactEvent
    ) -> Tally:
        result = self.evaluate(
            state, event, funnels=self.funnels, processed_at=self.clock(), contact_id=contact_id
        )
        links = links_to_request(result.state, event, contact_id)
        result.state.linked = [*result.state.linked, *links][-LINKED_LIMIT:]
        self._publish_outputs(batch, result.outputs)
        for anonymous_id in links:
            link = Link(
                anonymous_id=anonymous_id,
                user_id=contact_id,
                message_id=event.message_id,
                event_time=event.timestamp,
            )
            self._send_command(batch, anonymous_id, link)
        batch.keep(contact_id, result.state)
        return _tally(result.outputs)

    def _link(self, batch: Batch, record: Inbound, link: Link) -> Tally:
        state = batch.state(link.anonymous_id)
        verdict, reason = link_verdict(state, anonymous_id=link.anonymous_id, user_id=link.user_id)
        if verdict == "duplicate":
            return Tally("unchanged")
        if verdict == "reject":
            return self._reject(batch, record, ValueError(reason), reason="link_rejected")
        transfer = Transfer(
            anonymous_id=link.anonymous_id,
            user_id=link.user_id,
            message_id=link.message_id,
            event_time=link.event_time,
            state=state.to_json(),
        )
        self._send_command(batch, link.user_id, transfer)
        # The anonymous contact shrinks to a pointer at its owner (its deadlines went along).
        batch.keep(link.anonymous_id, engine.ContactState(merged_into=link.user_id))
        return Tally("unchanged")

    def _transfer(self, batch: Batch, transfer: Transfer) -> Tally:
        target = batch.state(transfer.user_id)
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
        self._publish_outputs(batch, outputs)
        batch.keep(transfer.user_id, state)
        return _tally(outputs)

    def _tick(self, batch: Batch, tick: Tick) -> Tally:
        before = batch.state(tick.contact_id)
        state, outputs = advance(
            before,
            contact_id=tick.contact_id,
            now=tick.now,
            funnels=self.funnels,
            processed_at=self.clock(),
        )
        self._publish_outputs(batch, outputs)
        batch.keep(tick.contact_id, state, store=state != before)
        return _tally(outputs)

    def _publish_outputs(self, batch: Batch, outputs: Sequence[engine.StageOutput]) -> None:
        for output in outputs:
            batch.publish(self.topics.stage_changed, encode_output(output))

    def _send_command(
        self, batch: Batch, contact_id: str, command: Link | Transfer | Forward | Tick
    ) -> None:
        record = OutboundRecord(
            key=contact_id, value=command.model_dump_json().encode(), headers=[]
        )
        batch.publish(self.commands_topic, record)

    def _count(self, tallies: Sequence[Tally]) -> list[Outcome]:
        # Summed per label first: a labelled counter costs a lookup per call.
        counts: Counter[tuple[Any, ...]] = Counter()
        for tally in tallies:
            for output in tally.outputs:
                if isinstance(output, StageChanged):
                    counts[self.metrics.stage_changes, output.funnel, output.to_stage] += 1
                elif isinstance(output, StageBlocked):
                    counts[self.metrics.stage_blocked, output.funnel, output.attempted_stage] += 1
                elif isinstance(output, StageStalled):
                    counts[self.metrics.stalls, output.funnel, output.stage] += 1
                elif isinstance(output, ContactMerged):
                    counts[self.metrics.merges, output.funnel] += 1
            if tally.reason is not None:
                counts[self.metrics.rejected, tally.reason] += 1
            counts[self.metrics.events_processed, tally.outcome] += 1
        for (counter, *labels), n in counts.items():
            counter.labels(*labels).inc(n)
        return [tally.outcome for tally in tallies]

    def _reject(self, batch: Batch, record: Inbound, exc: Exception, *, reason: str) -> Tally:
        key = record.key
        text_key = key.decode("utf-8", "backslashreplace") if key is not None else None
        log.warning("rejecting record (key %r, %s): %s", text_key, reason, exc)
        origin = self.commands_topic if record.command else self.topics.contact_events
        dead_letter = rejected_record(
            service=SERVICE,
            origin=origin,
            key=text_key,
            original=record.value,
            errors=[f"{type(exc).__name__}: {exc}"],
        )
        batch.publish(self.topics.rejected, dead_letter)
        return Tally("rejected", reason=reason)


def _tally(outputs: Sequence[engine.StageOutput]) -> Tally:
    changed = any(isinstance(output, StageChanged) for output in outputs)
    return Tally("changed" if changed else "unchanged", outputs)
