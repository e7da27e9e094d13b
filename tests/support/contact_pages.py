"""A hand-built set of stage outputs for the contact and stage pages (issue 18, item 4).

One contact, ``<run>-me``, with every kind of timeline row: two stage changes (the
second by a summed rule), a stall, a merge of an anonymous contact and a refused skip
in a strict funnel. A contact whose id is markup. And ``PAGED`` contacts in the
``skip`` funnel's prospect stage, for the stage page's pagination.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from funnel_shared.events import AnyStageOutput, Explanation, StageChanged, SumExplanation

from tests.support.contact_events import START
from tests.support.journey_set import HOUR, STAGES, STEPS
from tests.support.stage_outputs import blocked, journey, merged, stalled

__all__ = ["PAGED", "ContactPageSet", "contact_page_set"]

PAGED = 7  # Contacts in skip/prospect: three pages of three.
HOSTILE = "<script>alert('x')</script>&amp;"


@dataclass(frozen=True)
class ContactPageSet:
    me: str
    anonymous: str
    hostile: str
    paged_newest_first: list[str]
    outputs: list[AnyStageOutput]


def _caused_by(change: StageChanged, event_type: str, name: str | None) -> StageChanged:
    return change.model_copy(update={"cause_event_type": event_type, "cause_event_name": name})


def contact_page_set(run: str) -> ContactPageSet:
    me, anonymous, hostile = f"{run}-me", f"{run}-anon", f"{run}-{HOSTILE}"
    visit, lead = journey(
        me, "journey", [("visitor", START), ("lead", START + HOUR)], stages=STAGES
    )
    visit = _caused_by(visit, "page", "Pricing")
    total = SumExplanation(property="revenue", total=1040.5, at_least=1000, within_seconds=None)
    lead = _caused_by(lead, "track", "Order Completed").model_copy(
        update={"explanation": Explanation(sum=total)}
    )
    stall = stalled(lead, after=timedelta(days=2))
    [anonymous_visit] = journey(anonymous, "journey", [("visitor", START - HOUR)], stages=STAGES)
    merge = merged(
        me, anonymous, "journey", stage="lead", anonymous_stage="visitor", at=START + 3 * 24 * HOUR
    )
    [signed_up] = journey(me, "steps", [("signed_up", START)], stages=STEPS)
    refused = blocked(me, "steps", current="signed_up", attempted="ordered", at=START + 2 * HOUR)
    refused = refused.model_copy(
        update={"cause_event_type": "track", "cause_event_name": "Order Completed"}
    )
    outputs: list[AnyStageOutput] = [anonymous_visit, visit, lead, stall, merge, signed_up, refused]
    outputs += journey(hostile, "journey", [("visitor", START)], stages=STAGES)

    # Entered prospect at START + i h; p3 and p4 at the same time, told apart by id.
    paged = [f"{run}-p{i}" for i in range(PAGED)]
    for i, contact in enumerate(paged):
        at = START + (min(i, 3) if i <= 4 else i - 1) * HOUR
        outputs += journey(
            contact, "skip", [("visitor", START - HOUR), ("prospect", at)], stages=STAGES
        )
    # Newest stay first; at one time, the greater id first.
    newest_first = [paged[6], paged[5], paged[4], paged[3], paged[2], paged[1], paged[0]]
    return ContactPageSet(me, anonymous, hostile, newest_first, outputs)
