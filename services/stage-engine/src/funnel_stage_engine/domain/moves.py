"""One funnel, one event: which rule moves the contact, if any.

Rules are tried in file order. Every matching counted rule records the event
time first, and every matching summed rule its amount, so counts and totals
never depend on which rule wins. Then the first rule
that matches, has its count, applies from the current stage and is allowed by
the ordering mode moves the contact: one move per funnel per event. In a
strict funnel, when no rule could move a contact already in the funnel but one
tried to skip ahead, the first such attempt is published as ``StageBlocked``.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from funnel_shared.events import (
    ContactEvent,
    CountExplanation,
    Explanation,
    SourceKind,
    StageBlocked,
    StageChanged,
    SumExplanation,
    stage_blocked_id,
    stage_change_id,
)

from funnel_stage_engine.domain.definitions import Funnel, FunnelDefinition, RuleDefinition
from funnel_stage_engine.domain.matching import matches
from funnel_stage_engine.domain.state import ContactState, FunnelState
from funnel_stage_engine.domain.windows import (
    SumEntry,
    SumState,
    SumWindow,
    amount_of,
    record_amount,
    record_time,
)

__all__ = ["CauseKind", "Verdict", "enter_stage", "evaluate_funnel", "stage_changed", "verdict"]

Verdict = Literal["move", "blocked", "ignore"]
# What moved a contact: one of its events, a merge of two contacts, or a stall.
CauseKind = Literal["event", "merge", "stall"]


def evaluate_funnel(
    state: ContactState,
    funnel: Funnel,
    event: ContactEvent,
    *,
    contact_id: str,
    processed_at: datetime,
) -> StageChanged | StageBlocked | None:
    """Apply ``event`` to one funnel, updating ``state`` in place; the output, if any."""
    definition = funnel.definition
    position = state.funnels.get(funnel.name)
    current = position.current if position else None
    counters = state.counters.get(funnel.name, {})
    sums = state.sums.get(funnel.name, {})
    move: RuleDefinition | None = None
    blocked: RuleDefinition | None = None
    for rule in definition.rules:
        if not any(matches(match, event) for match in rule.match):
            continue
        if rule.count is not None:
            counters[rule.id] = record_time(rule.count, counters.get(rule.id, []), event.timestamp)
        if rule.sum is not None:
            sums[rule.id] = _record_sum(rule.sum, sums.get(rule.id, SumState()), event)
        if rule.count is not None and not rule.count.satisfied(counters[rule.id]):
            continue
        if rule.sum is not None and not rule.sum.satisfied(sums[rule.id].entries):
            continue
        if rule.from_ is not None and current not in rule.from_:
            continue
        outcome = verdict(definition, rule, current)
        if outcome == "move" and move is None:
            move = rule
        elif outcome == "blocked" and blocked is None:
            blocked = rule
    _keep_counters(state, funnel, counters)
    _keep_sums(state, funnel, sums)
    if move is not None:
        return _move(state, funnel, move, event, contact_id=contact_id, processed_at=processed_at)
    if blocked is not None:
        return _blocked(
            funnel, blocked, current, event, contact_id=contact_id, processed_at=processed_at
        )
    return None


def verdict(definition: FunnelDefinition, rule: RuleDefinition, current: str | None) -> Verdict:
    """Whether ``rule`` may move a contact from ``current`` under the funnel's ordering.

    A current stage the definition no longer knows (it was edited) counts as
    not being in the funnel.
    """
    if rule.to == current:
        return "ignore"
    target, here = definition.index(rule.to), definition.index(current)
    if definition.ordering == "free":
        return "move"
    if target < here:
        return "move" if rule.backward else "ignore"
    if definition.ordering == "forward" or target == here + 1:
        return "move"
    # Strict: a contact outside the funnel enters only at the first stage. Its other
    # events are not skips (it never started the process), so they are not recorded:
    # otherwise every shop order would count as a blocked close in a sales funnel.
    return "blocked" if here >= 0 else "ignore"


def _move(
    state: ContactState,
    funnel: Funnel,
    rule: RuleDefinition,
    event: ContactEvent,
    *,
    contact_id: str,
    processed_at: datetime,
) -> StageChanged:
    before = state.funnels.get(funnel.name)
    state.funnels[funnel.name] = enter_stage(
        funnel, before, rule.to, at=event.timestamp, entry_id=event.message_id
    )
    return stage_changed(
        funnel,
        contact_id=contact_id,
        from_stage=before.current if before else None,
        position=state.funnels[funnel.name],
        rule_id=rule.id,
        cause_id=event.message_id,
        cause_kind="event",
        cause_source=(event.source, event.source_kind),
        cause_event=_event_label(event),
        event_time=event.timestamp,
        processed_at=processed_at,
        traits=state.traits,
        explanation=explain(state, funnel.name, rule),
    )


def explain(state: ContactState, funnel: str, rule: RuleDefinition) -> Explanation | None:
    """The count or total that let a counted or summed rule fire (None for other rules)."""
    count = total = None
    if rule.count is not None:
        times = state.counters.get(funnel, {}).get(rule.id, [])
        count = CountExplanation(
            matches=len(times),
            at_least=rule.count.at_least,
            within_seconds=rule.count.within.total_seconds(),
        )
    if rule.sum is not None:
        kept = state.sums.get(funnel, {}).get(rule.id, SumState())
        total = SumExplanation(
            property=rule.sum.property,
            total=rule.sum.total(kept.entries),
            at_least=rule.sum.at_least,
            within_seconds=rule.sum.within.total_seconds() if rule.sum.within else None,
        )
    if count is None and total is None:
        return None
    return Explanation(count=count, sum=total)


def _record_sum(window: SumWindow, kept: SumState, event: ContactEvent) -> SumState:
    amount = amount_of(window, event.properties)
    if amount is None:
        return SumState(entries=list(kept.entries), ignored=kept.ignored + 1)
    entry = SumEntry(at=event.timestamp, amount=amount, id=event.message_id)
    return record_amount(window, kept, entry)


def _blocked(
    funnel: Funnel,
    rule: RuleDefinition,
    current: str | None,
    event: ContactEvent,
    *,
    contact_id: str,
    processed_at: datetime,
) -> StageBlocked:
    return StageBlocked(
        id=stage_blocked_id(
            funnel=funnel.name,
            contact_id=contact_id,
            message_id=event.message_id,
            attempted_stage=rule.to,
        ),
        funnel=funnel.name,
        funnel_version=funnel.version,
        contact_id=contact_id,
        current_stage=current,
        attempted_stage=rule.to,
        rule_id=rule.id,
        cause_message_id=event.message_id,
        cause_event_type=event.type,
        cause_event_name=_event_label(event)[1],
        event_time=event.timestamp,
        processed_at=processed_at,
    )


def _event_label(event: ContactEvent) -> tuple[str, str | None]:
    """An event's type and name (a track's event, a page's or screen's name), as a stage
    change or a refused skip names its cause."""
    return event.type, event.event if event.type == "track" else event.name


def stage_changed(
    funnel: Funnel,
    *,
    contact_id: str,
    from_stage: str | None,
    position: FunnelState,
    rule_id: str,
    cause_id: str,
    cause_kind: CauseKind,
    event_time: datetime,
    processed_at: datetime,
    traits: Mapping[str, Any],
    cause_source: tuple[str, SourceKind] | None = None,
    explanation: Explanation | None = None,
    cause_event: tuple[str, str | None] | None = None,
) -> StageChanged:
    """The one way to build a ``StageChanged``: the contact is now at ``position``.

    ``cause_id`` is what caused the move (an event's messageId, a merge id or a
    stall's id); with the funnel, contact and new stage it makes the change's
    deterministic id, so a replay yields the same id.
    """
    return StageChanged(
        id=stage_change_id(
            funnel=funnel.name,
            contact_id=contact_id,
            message_id=cause_id,
            to_stage=position.current,
        ),
        funnel=funnel.name,
        funnel_version=funnel.version,
        contact_id=contact_id,
        from_stage=from_stage,
        to_stage=position.current,
        furthest_stage=position.furthest,
        rule_id=rule_id,
        cause_message_id=cause_id,
        cause_kind=cause_kind,
        cause_source=cause_source[0] if cause_source else None,
        cause_source_kind=cause_source[1] if cause_source else None,
        cause_event_type=cause_event[0] if cause_event else None,
        cause_event_name=cause_event[1] if cause_event else None,
        event_time=event_time,
        processed_at=processed_at,
        traits=dict(traits),
        explanation=explanation,
    )


def enter_stage(
    funnel: Funnel, before: FunnelState | None, stage: str, *, at: datetime, entry_id: str
) -> FunnelState:
    """The position after moving into ``stage`` at event time ``at``: a new stay begins."""
    definition = funnel.definition
    furthest = stage
    if before is not None and definition.index(before.furthest) > definition.index(stage):
        furthest = before.furthest
    stall = definition.stall_rule(stage)
    return FunnelState(
        current=stage,
        furthest=furthest,
        entered_at=at,
        entry_id=entry_id,
        stall_at=at + stall.after if stall is not None else None,
    )


def _keep_counters(
    state: ContactState, funnel: Funnel, counters: dict[str, list[datetime]]
) -> None:
    # Only counted rules that still exist keep times: an edited funnel leaves no garbage.
    counted = {rule.id for rule in funnel.definition.rules if rule.count is not None}
    kept = {rule_id: times for rule_id, times in counters.items() if rule_id in counted and times}
    if kept:
        state.counters[funnel.name] = kept
    else:
        state.counters.pop(funnel.name, None)


def _keep_sums(state: ContactState, funnel: Funnel, sums: dict[str, SumState]) -> None:
    # Only summed rules that still exist keep amounts: an edited funnel leaves no garbage.
    summed = {rule.id for rule in funnel.definition.rules if rule.sum is not None}
    kept = {
        rule_id: totals
        for rule_id, totals in sums.items()
        if rule_id in summed and (totals.entries or totals.ignored)
    }
    if kept:
        state.sums[funnel.name] = kept
    else:
        state.sums.pop(funnel.name, None)
