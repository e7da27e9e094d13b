"""Stalls: a contact that stays in a stage longer than its funnel allows.

Entering a stage with a stall rule records a deadline in the stay
(``FunnelState.stall_at`` = event time of the entry + ``after``); any move
starts a new stay and so replaces or clears it. ``advance`` is called with the
current event time (the caller's watermark): every stay whose deadline has
passed stalls, once: its deadline is cleared, and the ``StageStalled`` id is
derived from the stay (funnel, contact, stage, what caused the entry), so a
replay yields the same id. A rule with ``move_to`` then moves the contact,
whatever the ordering mode, in a stage change caused by the stall.

Pure: no I/O, no clock; the caller passes ``now`` and ``processed_at``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from funnel_shared.events import StageChanged, StageStalled, stage_stalled_id

from funnel_stage_engine.domain.definitions import Funnel
from funnel_stage_engine.domain.moves import enter_stage, stage_changed
from funnel_stage_engine.domain.state import ContactState, FunnelState

__all__ = ["STALL_RULE_ID", "advance", "next_deadline"]

STALL_RULE_ID = "stall"


def next_deadline(state: ContactState) -> datetime | None:
    """The earliest pending stall deadline of the contact, if any."""
    deadlines = [position.stall_at for position in state.funnels.values() if position.stall_at]
    return min(deadlines, default=None)


def advance(
    state: ContactState,
    *,
    contact_id: str,
    now: datetime,
    funnels: Sequence[Funnel],
    processed_at: datetime,
) -> tuple[ContactState, list[StageStalled | StageChanged]]:
    """Fire every stall due at event time ``now``. Does not mutate ``state``."""
    new_state = state.model_copy(deep=True)
    configured = {funnel.name for funnel in funnels}
    for name, kept in new_state.funnels.items():
        if name not in configured:
            kept.stall_at = None  # A funnel no longer configured never stalls anyone.
    outputs: list[StageStalled | StageChanged] = []
    for funnel in funnels:
        position = new_state.funnels.get(funnel.name)
        if position is None or position.stall_at is None or position.stall_at > now:
            continue
        outputs += _stall(new_state, funnel, position, contact_id, processed_at)
    return new_state, outputs


def _stall(
    state: ContactState,
    funnel: Funnel,
    position: FunnelState,
    contact_id: str,
    processed_at: datetime,
) -> list[StageStalled | StageChanged]:
    deadline = position.stall_at
    rule = funnel.definition.stall_rule(position.current)
    position.stall_at = None
    if rule is None or deadline is None or position.entered_at is None:
        return []  # The funnel was edited since the deadline was set: nothing stalls.
    stalled = StageStalled(
        id=stage_stalled_id(
            funnel=funnel.name,
            contact_id=contact_id,
            stage=position.current,
            entry_id=position.entry_id or "",
        ),
        funnel=funnel.name,
        funnel_version=funnel.version,
        contact_id=contact_id,
        stage=position.current,
        furthest_stage=position.furthest,
        entered_at=position.entered_at,
        entry_id=position.entry_id or "",
        stalled_after_seconds=rule.after.total_seconds(),
        move_to=rule.move_to,
        event_time=deadline,
        processed_at=processed_at,
        traits=dict(state.traits),
    )
    if rule.move_to is None:
        return [stalled]
    moved = enter_stage(funnel, position, rule.move_to, at=deadline, entry_id=stalled.id)
    state.funnels[funnel.name] = moved
    change = stage_changed(
        funnel,
        contact_id=contact_id,
        from_stage=position.current,
        position=moved,
        rule_id=STALL_RULE_ID,
        cause_id=stalled.id,
        cause_kind="stall",
        event_time=deadline,
        processed_at=processed_at,
        traits=state.traits,
    )
    return [stalled, change]
