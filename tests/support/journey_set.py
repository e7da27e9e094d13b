"""The hand-computed journey set the read API and funnel-page tests project."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from funnel_shared.events import StageBlocked, StageChanged
from funnel_stage_engine.domain.definitions import Funnel, parse_funnel

from tests.support.contact_events import START
from tests.support.stage_outputs import blocked, journey

STAGES = ["visitor", "lead", "prospect", "customer"]
STEPS = ["signed_up", "demoed", "ordered"]
HOUR = timedelta(hours=1)
FUNNELS = {
    "journey": "name: journey\nstages: [visitor, lead, prospect, customer]\n"
    "rules: [{id: visit, to: visitor, match: {type: page}}]\n",
    "skip": "name: skip\nstages: [visitor, lead, prospect, customer]\n"
    "rules: [{id: visit, to: visitor, match: {type: page}}]\n",
    "steps": "name: steps\nordering: strict\nstages: [signed_up, demoed, ordered]\n"
    "rules: [{id: sign-up, to: signed_up, match: {event: Signed Up}}]\n",
}


def funnels_under_test() -> list[Funnel]:
    return [
        parse_funnel(text.encode(), path=Path(f"{name}.yaml")) for name, text in FUNNELS.items()
    ]


def journey_set(run: str) -> list[StageChanged | StageBlocked]:
    """10 visitors, 6 leads, 3 prospects, 1 customer in the range; one early lead before it.

    Lead after visitor: 1..6 h (median 3.5 h, p90 5.5 h). Prospect after lead: 1, 2, 4 h
    (median 2 h, p90 3.6 h). Customer after prospect: 10 h.
    """
    outputs: list[StageChanged | StageBlocked] = []
    to_prospect = [1, 2, 4]
    for i in range(10):
        at = START + timedelta(minutes=i)
        moves = [("visitor", at)]
        if i < 6:
            moves.append(("lead", moves[-1][1] + (i + 1) * HOUR))
        if i < 3:
            moves.append(("prospect", moves[-1][1] + to_prospect[i] * HOUR))
        if i < 1:
            moves.append(("customer", moves[-1][1] + 10 * HOUR))
        outputs += journey(f"{run}-c{i}", "journey", moves, stages=STAGES)
    early = START - timedelta(days=10)
    outputs += journey(
        f"{run}-early", "journey", [("visitor", early), ("lead", early + HOUR)], stages=STAGES
    )
    # A forward funnel may skip: visitor straight to customer reaches lead and prospect too.
    outputs += journey(
        f"{run}-skipper", "skip", [("visitor", START), ("customer", START + HOUR)], stages=STAGES
    )
    outputs += journey(f"{run}-s1", "steps", [("signed_up", START)], stages=STEPS)
    for at in (START, early):
        outputs.append(
            blocked(f"{run}-s1", "steps", current="signed_up", attempted="ordered", at=at)
        )
    return outputs
