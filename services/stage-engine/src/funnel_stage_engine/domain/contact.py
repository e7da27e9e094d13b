"""Per-contact decisions: what one decoded record means for the contact it is about.

A record is a message about exactly one contact (its ``subject``): a contact
event, or a command on the internal command topic (``commands.py``). Given that
contact's state, ``decide`` says what follows: the contact's new state, the
outputs to publish on ``funnel.stage-changed.v1``, and the commands to send to
other contacts (each keyed by its own subject). It publishes and stores nothing;
the worker's handler does, in the order that keeps a crash safe.

- An anonymous event of a contact already merged into another is forwarded to
  its owner (``Forward``), which evaluates it as its own.
- An event (or a forwarded one) is evaluated against every funnel
  (``engine.evaluate``); an event that links anonymousIds to its identified
  contact asks each of them to join (``Link``).
- A link is decided against the anonymous contact's state: merged (its state
  travels to the owner in a ``Transfer`` and it shrinks to a pointer), a
  duplicate (nothing), or refused.
- A transfer merges the anonymous state into the owner's (``identity.merge``).
- A tick fires the contact's due stalls (``stalls.advance``).
- An event or a merge that changes a summed rule's running total also yields a
  ``TotalChanged`` for it (``totals.py``), so the read side can show the total.

What a contact may keep is bounded (``limits.py``): an event with an id longer
than allowed, or whose traits would take the contact past its bounds, is
refused (the worker dead-letters it) and the contact keeps its last good state.

Replays: every record's ``Position`` (its input stream and offset) is remembered
in the state it changed (``ContactState.positions``), so a record delivered again
(after a crash or a rebalance, before its offset was committed) changes nothing,
however many records came after it. A forwarded event also carries where it was
first read, so its replay is recognised by the owner as well. The messageId
window stays, for duplicates a client sends as new records.

Pure: no I/O and no clock; ``processed_at`` comes in as an argument.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from funnel_shared.events import AnyStageOutput, ContactEvent, StageChanged, merge_id
from funnel_shared.ids import usable_id

from funnel_stage_engine.domain import engine
from funnel_stage_engine.domain.commands import Forward, Link, Tick, Transfer
from funnel_stage_engine.domain.definitions import Funnel
from funnel_stage_engine.domain.engine import ContactState
from funnel_stage_engine.domain.identity import (
    LINKED_LIMIT,
    link_verdict,
    links_to_request,
    merge,
)
from funnel_stage_engine.domain.limits import (
    StateLimits,
    id_too_long,
    recent_ids,
    traits_over_limit,
)
from funnel_stage_engine.domain.stalls import advance
from funnel_stage_engine.domain.totals import changed_totals

__all__ = [
    "AnyCommand",
    "Decision",
    "Evaluate",
    "Message",
    "Outcome",
    "Position",
    "Refusal",
    "applied_already",
    "decide",
    "seen_at",
    "subject",
]

# What a record came to, as counted in ``funnel_stage_engine_events_processed_total``.
Outcome = Literal["changed", "unchanged", "rejected", "forwarded"]

AnyCommand = Link | Transfer | Forward | Tick
Message = ContactEvent | AnyCommand

# ``engine.evaluate`` or a stand-in with its signature (tests make it trip on a record).
Evaluate = Callable[..., engine.Evaluation]


@dataclass(frozen=True)
class Position:
    """Where a record was read: its input stream (``topic:partition``) and its offset there."""

    stream: str
    offset: int

    @classmethod
    def of(cls, topic: str, partition: int, offset: int) -> Position:
        return cls(f"{topic}:{partition}", offset)


@dataclass(frozen=True)
class Refusal:
    """Why a message was refused: ``reason`` is the metric label, ``detail`` says why."""

    reason: str
    detail: str


@dataclass(frozen=True)
class Decision:
    """What one message means for its subject.

    ``state`` is the subject's new state (``None``: nothing to keep). With
    ``store`` false it is only remembered for the rest of the batch, not written
    (a tick that fired nothing). ``commands`` go to the command topic, each keyed
    by ``subject(command)``. ``refused`` is set when the message is refused; then
    there is nothing else.
    """

    state: ContactState | None = None
    outputs: Sequence[AnyStageOutput] = ()
    commands: Sequence[AnyCommand] = ()
    outcome: Outcome = "unchanged"
    store: bool = True
    refused: Refusal | None = None


def subject(message: Message) -> str:
    """The contact a message is about: its state decides it, and its record is keyed by it."""
    if isinstance(message, ContactEvent):
        return message.contact_key
    if isinstance(message, Link):
        return message.anonymous_id
    if isinstance(message, Tick):
        return message.contact_id
    return message.user_id  # Forward, Transfer.


def seen_at(message: Message) -> datetime | None:
    """The event time a message shows of its subject (an event's), if any."""
    if isinstance(message, ContactEvent):
        return message.timestamp
    if isinstance(message, Forward):
        return message.event.timestamp
    return None


def decide(
    state: ContactState,
    message: Message,
    *,
    funnels: Sequence[Funnel],
    processed_at: datetime,
    evaluate: Evaluate = engine.evaluate,
    dedupe_window: int = engine.DEFAULT_DEDUPE_WINDOW,
    limits: StateLimits | None = None,
    position: Position | None = None,
) -> Decision:
    """Decide ``message`` against its subject's ``state``. Does not mutate ``state``.

    ``limits`` bound what the contact keeps (without them: the defaults, with
    ``dedupe_window`` as the number of recent ids kept). ``position`` is where the
    record was read: a record at or below a position the state remembers was
    applied already and changes nothing (its state is stored again as it is);
    otherwise the new state remembers it.
    """
    if limits is None:
        limits = StateLimits(dedupe_window=dedupe_window)
    positions = _positions(message, position)
    if applied_already(state, positions):
        # Nothing changes, but the state is stored again: a local store (RocksDB) can be
        # ahead of the changelog after a kill (the state was written locally, its changelog
        # record never sent, its records not committed), and this replay is the moment to
        # bring the changelog up to it, before another worker recovers from it.
        return Decision(state, outcome="unchanged")
    decision = _decide(state, message, funnels, processed_at, evaluate, limits, position)
    return _remember(state, decision, positions)


def applied_already(state: ContactState, positions: Sequence[Position]) -> bool:
    """Whether a record read at ``positions`` was already applied to ``state``."""
    return any(state.positions.get(p.stream, -1) >= p.offset for p in positions)


def _positions(message: Message, position: Position | None) -> list[Position]:
    found = [] if position is None else [position]
    if not isinstance(message, Forward) or message.origin is None:
        return found
    if message.origin_offset is not None:
        found.append(Position(f"forward:{message.origin}", message.origin_offset))
    return found


def _remember(state: ContactState, decision: Decision, positions: Sequence[Position]) -> Decision:
    """The decision, with its record's positions in the new state (kept even when the
    record changed nothing else, e.g. an event forwarded away)."""
    if not positions or decision.refused is not None:
        return decision
    kept = decision.state
    store = decision.store
    if kept is None:
        kept, store = state.model_copy(deep=True), True
    kept.positions = {**kept.positions, **{p.stream: p.offset for p in positions}}
    return replace(decision, state=kept, store=store)


def _decide(
    state: ContactState,
    message: Message,
    funnels: Sequence[Funnel],
    processed_at: datetime,
    evaluate: Evaluate,
    limits: StateLimits,
    position: Position | None,
) -> Decision:
    contact_id = subject(message)
    if isinstance(message, ContactEvent):
        too_long = id_too_long(
            {
                "messageId": message.message_id,
                "userId": message.user_id,
                "anonymousId": message.anonymous_id,
                "previousId": message.previous_id,
            },
            limits,
        )
        if too_long is not None:
            return Decision(outcome="rejected", refused=Refusal("id_too_long", too_long))
        if state.merged_into is not None and usable_id(message.user_id) is None:
            # This anonymous contact was merged: the event counts for its owner.
            forward = Forward(
                user_id=state.merged_into,
                event=message,
                origin=None if position is None else position.stream,
                origin_offset=None if position is None else position.offset,
            )
            return Decision(commands=[forward], outcome="forwarded")
        return _evaluate(state, message, contact_id, funnels, processed_at, evaluate, limits)
    if isinstance(message, Forward):
        return _evaluate(state, message.event, contact_id, funnels, processed_at, evaluate, limits)
    if isinstance(message, Link):
        return _link(state, message)
    if isinstance(message, Transfer):
        target, outputs = merge(
            state,
            ContactState.from_json(message.state),
            contact_id=contact_id,
            merged_contact_id=message.anonymous_id,
            cause_message_id=message.message_id,
            event_time=message.event_time,
            funnels=funnels,
            processed_at=processed_at,
            dedupe_window=limits.dedupe_window,
            limits=limits,
        )
        totals = changed_totals(
            state,
            target,
            funnels,
            contact_id=contact_id,
            cause_id=merge_id(merged_contact_id=message.anonymous_id, contact_id=contact_id),
            cause_kind="merge",
            event_time=message.event_time,
            processed_at=processed_at,
        )
        return Decision(target, [*outputs, *totals], outcome=_outcome(outputs))
    ticked, stalls = advance(
        state, contact_id=contact_id, now=message.now, funnels=funnels, processed_at=processed_at
    )
    return Decision(ticked, stalls, outcome=_outcome(stalls), store=ticked != state)


def _evaluate(
    state: ContactState,
    event: ContactEvent,
    contact_id: str,
    funnels: Sequence[Funnel],
    processed_at: datetime,
    evaluate: Evaluate,
    limits: StateLimits,
) -> Decision:
    result = evaluate(
        state,
        event,
        funnels=funnels,
        processed_at=processed_at,
        contact_id=contact_id,
        dedupe_window=limits.dedupe_window,
    )
    if result.state.traits != state.traits:
        over = traits_over_limit(result.state.traits, limits)
        if over is not None:
            # Refused whole: the contact keeps its last good state (see ``limits.py``).
            return Decision(outcome="rejected", refused=Refusal("state_limit", over))
    result.state.seen_message_ids = recent_ids(result.state.seen_message_ids, limits)
    links = links_to_request(result.state, event, contact_id)
    result.state.linked = [*result.state.linked, *links][-LINKED_LIMIT:]
    requests = [
        Link(
            anonymous_id=anonymous_id,
            user_id=contact_id,
            message_id=event.message_id,
            event_time=event.timestamp,
        )
        for anonymous_id in links
    ]
    totals = changed_totals(
        state,
        result.state,
        funnels,
        contact_id=contact_id,
        cause_id=event.message_id,
        cause_kind="event",
        event_time=event.timestamp,
        processed_at=processed_at,
    )
    outputs = [*result.outputs, *totals]
    return Decision(result.state, outputs, requests, outcome=_outcome(result.outputs))


def _link(state: ContactState, link: Link) -> Decision:
    verdict, reason = link_verdict(state, anonymous_id=link.anonymous_id, user_id=link.user_id)
    if verdict == "duplicate":
        return Decision()
    if verdict == "reject":
        return Decision(outcome="rejected", refused=Refusal("link_rejected", reason))
    transfer = Transfer(
        anonymous_id=link.anonymous_id,
        user_id=link.user_id,
        message_id=link.message_id,
        event_time=link.event_time,
        state=state.to_json(),
    )
    # The anonymous contact shrinks to a pointer at its owner (its deadlines went along);
    # it keeps its positions, so a replayed event is not forwarded again.
    pointer = ContactState(merged_into=link.user_id, positions=state.positions)
    return Decision(pointer, commands=[transfer])


def _outcome(outputs: Sequence[AnyStageOutput]) -> Outcome:
    return "changed" if any(isinstance(output, StageChanged) for output in outputs) else "unchanged"
