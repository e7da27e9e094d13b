"""Batch processing: decode each record, publish everything, wait, then store; and count.

What a record means for its contact is decided in the domain
(``domain/contact.py``, ``decide``); this module only does the I/O around it,
in an order that keeps a crash safe.

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
records produced (``worker/batch.py``), so one batch yields what the same records
would yield one at a time.

A record's content can fail only that record. Before anything of a batch is
sent, each message's outputs, commands and new state are measured as the
producer measures them (``record_sizes.py``); a message that would produce a
record larger than ``max_record_bytes`` is dead-lettered (``too_large``) and
its contact keeps its last good state. What a contact may keep is bounded in
the domain (``domain/limits.py``: ``state_limit``, ``id_too_long``).

A failure to *publish* is not a record's fault and is not dead-lettered: it
propagates, nothing of the batch is stored, and the caller stops the worker
without acknowledging any of its records.

Identity and stalls use the same order. Records on the internal command topic
(``domain/commands.py``) are commands: a link is decided on the anonymous contact's
partition, whose state then travels to the identified contact in a transfer
(sent before the anonymous state is marked merged); a tick fires due stalls.
See ``docs/stage-engine.md``, "Identity" and "Stalls".
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from funnel_shared.events import (
    AnyStageOutput,
    ContactEvent,
    ContactMerged,
    StageBlocked,
    StageChanged,
    StageStalled,
)
from funnel_shared.kafka import encode_model, rejected_record
from funnel_shared.publishing import OutboundRecord, Publisher, publish_all
from funnel_shared.settings import TopicSettings
from pydantic import ValidationError

from funnel_stage_engine.domain import engine
from funnel_stage_engine.domain.commands import decode_command
from funnel_stage_engine.domain.contact import (
    AnyCommand,
    Evaluate,
    Message,
    Outcome,
    decide,
    seen_at,
    subject,
)
from funnel_stage_engine.domain.definitions import Funnel
from funnel_stage_engine.domain.limits import DEFAULT_LIMITS, StateLimits
from funnel_stage_engine.domain.stalls import next_deadline
from funnel_stage_engine.domain.state import ContactState
from funnel_stage_engine.metrics import StageEngineMetrics
from funnel_stage_engine.record_sizes import fit_dead_letter, record_size, state_size
from funnel_stage_engine.worker.batch import Batch, Inbound, StateStore, Tally

__all__ = [
    "SOURCE",
    "ContactEventHandler",
    "DeadlineListener",
    "IdTooLong",
    "Inbound",
    "RecordTooLarge",
    "StateLimitExceeded",
    "StateStore",
    "command_record",
    "encode_output",
]

log = logging.getLogger("funnel.stage_engine")

SOURCE = "/funnel/stage-engine"
SERVICE = "stage-engine"


class DeadlineListener(Protocol):
    """Told each contact's earliest stall deadline whenever its state is stored."""

    def note(self, contact_id: str, deadline: datetime | None) -> None: ...

    def saw(self, contact_id: str, event_time: datetime) -> None: ...


class _NoDeadlines:
    def note(self, contact_id: str, deadline: datetime | None) -> None:
        return None

    def saw(self, contact_id: str, event_time: datetime) -> None:
        return None


def encode_output(output: AnyStageOutput) -> OutboundRecord:
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
    limits: StateLimits = DEFAULT_LIMITS
    max_record_bytes: int = 1_000_000

    async def handle_batch(self, records: Sequence[Inbound]) -> list[Outcome]:
        """Process records in order. Returns once it is safe to ack them all; raises if
        a publish failed, having stored nothing."""
        batch = Batch(self.states)
        for record in records:
            batch.begin(record.origin)
            try:
                tally = self._record(batch, record)
            except Exception as exc:  # A rule that trips on a record must not stop the partition.
                batch.discard()
                tally = self._reject(batch, record, exc, reason="evaluation_failed")
            batch.commit(tally)
        acks = await publish_all(self.publisher, batch.outbound)
        # Only with every output acknowledged may the new states be stored: a batch
        # partly acknowledged stores nothing and is processed again after the restart.
        acks.raise_first()
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

    def _record(self, batch: Batch, record: Inbound) -> Tally:
        """Decode one record, let the domain decide it, and stage what it decided."""
        message: Message
        try:
            if record.command:
                message = decode_command(record.value)
            else:
                message = ContactEvent.model_validate_json(record.value)
        except ValidationError as exc:
            reason = "invalid_command" if record.command else "invalid_event"
            return self._reject(batch, record, exc, reason=reason)
        contact_id = subject(message)
        event_time = seen_at(message)
        if event_time is not None:
            self.deadlines.saw(contact_id, event_time)
        decision = decide(
            batch.state(contact_id),
            message,
            funnels=self.funnels,
            processed_at=self.clock(),
            evaluate=self.evaluate,
            limits=self.limits,
            position=record.position,
        )
        if decision.refused is not None:
            error = _REFUSALS.get(decision.refused.reason, ValueError)(decision.refused.detail)
            return self._reject(batch, record, error, reason=decision.refused.reason)
        outbound = [(self.topics.stage_changed, encode_output(o)) for o in decision.outputs]
        outbound += [(self.commands_topic, command_record(c)) for c in decision.commands]
        too_large = self._too_large(contact_id, decision.state, decision.store, outbound)
        if too_large is not None:
            return self._reject(batch, record, RecordTooLarge(too_large), reason="too_large")
        for topic, out in outbound:
            batch.publish(topic, out)
        if decision.state is not None:
            batch.keep(contact_id, decision.state, store=decision.store)
        return Tally(decision.outcome, decision.outputs)

    def _too_large(
        self,
        contact_id: str,
        state: ContactState | None,
        store: bool,
        outbound: Sequence[tuple[str, OutboundRecord]],
    ) -> str | None:
        """Why one of the records a message produces could not be sent, or None."""
        for topic, out in outbound:
            size = record_size(out)
            if size > self.max_record_bytes:
                limit = self.max_record_bytes
                return f"a record for {topic} would take {size} bytes (at most {limit})"
        if state is not None and store:
            size = state_size(contact_id, state)
            if size > self.max_record_bytes:
                return (
                    f"the contact's state would take about {size} bytes"
                    f" (at most {self.max_record_bytes})"
                )
        return None

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

        def build(original: str, errors: list[str]) -> OutboundRecord:
            return rejected_record(
                service=SERVICE, origin=origin, key=text_key, original=original, errors=errors
            )

        dead_letter = fit_dead_letter(
            build,
            original=record.value.decode("utf-8", "backslashreplace"),
            errors=[f"{type(exc).__name__}: {exc}"],
            max_bytes=self.max_record_bytes,
        )
        batch.publish(self.topics.rejected, dead_letter)
        return Tally("rejected", reason=reason)


class RecordTooLarge(ValueError):
    """A message would produce a record larger than the producer can send."""


class StateLimitExceeded(ValueError):
    """A message would take its contact's state past its bounds (``domain/limits.py``)."""


class IdTooLong(ValueError):
    """A message carries an id longer than a contact's state may hold."""


# The exception named in a refused message's dead letter, by refusal reason.
_REFUSALS: dict[str, type[ValueError]] = {
    "state_limit": StateLimitExceeded,
    "id_too_long": IdTooLong,
}


def command_record(command: AnyCommand) -> OutboundRecord:
    """A command for the internal topic, keyed by the contact it acts on."""
    return OutboundRecord(
        key=subject(command), value=command.model_dump_json().encode(), headers=[]
    )
