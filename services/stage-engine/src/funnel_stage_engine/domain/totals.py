"""Running totals of summed rules, as the read side sees them: a ``TotalChanged`` per change.

The read API runs beside the worker but cannot read its table (several workers
each own some contacts), so the worker publishes a summed rule's running total
whenever a record changes it: after an event (or a forwarded one) and after a
merge. Nothing is published when the total and the count of ignored values stay
the same (a duplicate, an amount of 0 to a rule that has a total already).

The total is the rule's own (``windows.SumWindow.total``): its window ends at the
newest matching event's time, so it never changes while no matching event comes
(it does not decay with the clock, and a stall tick changes no total).

Each rule's ``SumState.changes`` counts its changes; the record carries it as
``sequence``, so a consumer keeps the newest record however late an older one
arrives. It is set here, in one place, from the state before the record.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from funnel_shared.events import TotalChanged, total_changed_id

from funnel_stage_engine.domain.definitions import Funnel, RuleDefinition
from funnel_stage_engine.domain.state import ContactState
from funnel_stage_engine.domain.windows import SumState

__all__ = ["changed_totals"]


def changed_totals(
    before: ContactState,
    after: ContactState,
    funnels: Sequence[Funnel],
    *,
    contact_id: str,
    cause_id: str,
    cause_kind: Literal["event", "merge"],
    event_time: datetime,
    processed_at: datetime,
) -> list[TotalChanged]:
    """A ``TotalChanged`` per summed rule whose total (or ignored count) differs from
    ``before`` to ``after``, in funnel and rule order. Sets each kept rule's ``changes``
    in ``after`` (which the caller owns: a fresh state)."""
    outputs: list[TotalChanged] = []
    for funnel in funnels:
        for rule in funnel.definition.rules:
            new = after.sums.get(funnel.name, {}).get(rule.id)
            if rule.sum is None or new is None:
                continue
            old = before.sums.get(funnel.name, {}).get(rule.id)
            previous = old or SumState()
            same = old is not None and (
                rule.sum.total(new.entries),
                new.ignored,
            ) == (rule.sum.total(old.entries), old.ignored)
            new.changes = previous.changes + (0 if same else 1)
            if same:
                continue
            outputs.append(
                _total_changed(
                    funnel,
                    rule,
                    new,
                    contact_id=contact_id,
                    cause_id=cause_id,
                    cause_kind=cause_kind,
                    event_time=event_time,
                    processed_at=processed_at,
                )
            )
    return outputs


def _total_changed(
    funnel: Funnel,
    rule: RuleDefinition,
    kept: SumState,
    *,
    contact_id: str,
    cause_id: str,
    cause_kind: Literal["event", "merge"],
    event_time: datetime,
    processed_at: datetime,
) -> TotalChanged:
    assert rule.sum is not None
    return TotalChanged(
        id=total_changed_id(
            funnel=funnel.name,
            contact_id=contact_id,
            rule_id=rule.id,
            cause_id=cause_id,
            sequence=kept.changes,
        ),
        funnel=funnel.name,
        funnel_version=funnel.version,
        contact_id=contact_id,
        rule_id=rule.id,
        to_stage=rule.to,
        property=rule.sum.property,
        total=rule.sum.total(kept.entries),
        at_least=rule.sum.at_least,
        within_seconds=rule.sum.within.total_seconds() if rule.sum.within else None,
        amounts=len(kept.entries),
        ignored=kept.ignored,
        sequence=kept.changes,
        cause_message_id=cause_id,
        cause_kind=cause_kind,
        event_time=event_time,
        processed_at=processed_at,
    )
