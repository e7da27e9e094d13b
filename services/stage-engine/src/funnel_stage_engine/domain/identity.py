"""Identity stitching: which anonymousIds an event links, and merging two contacts' states.

An event carrying a userId U and an anonymousId A (or an alias from previousId
A to U) *links* A to U. The link is decided on A's partition against A's
state (``link_verdict``); if accepted, A's state travels to U's partition and
is merged there (``merge``). Both are pure: no I/O, no clock.

Merge rules, per funnel:
- the furthest stage wins;
- the current stage follows the ordering mode: ``forward`` takes the further
  of the two current stages; ``strict`` takes the anonymous contact's current
  stage only when U is outside the funnel or it is U's next stage (a merge is
  no licence to skip); ``free`` takes the more recently entered one;
- counted-rule times are combined (bounded like any count window; a time
  already present is not added twice, which keeps a repeated merge idempotent);
- summed-rule amounts are combined the same way (an amount whose messageId is
  already present is not added twice); their ``ignored`` counts (a diagnostic)
  add up, and a transfer re-sent with more history adds its count again;
- traits combine, the identified contact's winning; recent messageIds unite.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from funnel_shared.events import (
    ContactEvent,
    ContactMerged,
    StageChanged,
    contact_merged_id,
    merge_id,
)
from funnel_shared.ids import usable_id

from funnel_stage_engine.domain.definitions import Funnel
from funnel_stage_engine.domain.limits import StateLimits, merge_traits, recent_ids
from funnel_stage_engine.domain.moves import stage_changed
from funnel_stage_engine.domain.state import ContactState, FunnelState
from funnel_stage_engine.domain.windows import SumState, record_amount, record_time

__all__ = [
    "LINKED_LIMIT",
    "MERGE_RULE_ID",
    "LinkVerdict",
    "link_verdict",
    "links_to_request",
    "merge",
]

MERGE_RULE_ID = "merge"
# An identified contact remembers this many anonymousIds it has linked, so that
# its every event does not send a link request again (a repeat is harmless anyway).
LINKED_LIMIT = 50

LinkVerdict = Literal["merge", "duplicate", "reject"]


def links_to_request(state: ContactState, event: ContactEvent, contact_id: str) -> list[str]:
    """AnonymousIds that ``event`` links to identified ``contact_id`` and that are not yet asked.

    Only an event whose userId is the contact links anything: an anonymous
    event forwarded to a merged contact does not.
    """
    if usable_id(event.user_id) != contact_id:
        return []
    candidates = [event.anonymous_id]
    if event.type == "alias":
        candidates.append(event.previous_id)
    found: list[str] = []
    for candidate in candidates:
        usable = usable_id(candidate)
        if usable and usable != contact_id and usable not in state.linked and usable not in found:
            found.append(usable)
    return found


def link_verdict(
    anonymous: ContactState, *, anonymous_id: str, user_id: str
) -> tuple[LinkVerdict, str]:
    """Whether to merge ``anonymous_id`` (state ``anonymous``) into ``user_id``, and why."""
    if usable_id(anonymous_id) is None or usable_id(user_id) is None:
        return "reject", "a blocked identity value never links anything"
    if anonymous.merged_into == user_id:
        return "duplicate", f"{anonymous_id!r} already belongs to {user_id!r}"
    if anonymous.merged_into is not None:
        return (
            "reject",
            f"anonymousId {anonymous_id!r} already belongs to {anonymous.merged_into!r}",
        )
    if anonymous.identified:
        return "reject", (
            f"{anonymous_id!r} is a userId: two identified contacts are never merged implicitly"
        )
    return "merge", f"{anonymous_id!r} merges into {user_id!r}"


def merge(
    target: ContactState,
    source: ContactState,
    *,
    contact_id: str,
    merged_contact_id: str,
    cause_message_id: str,
    event_time: datetime,
    funnels: Sequence[Funnel],
    processed_at: datetime,
    dedupe_window: int,
    limits: StateLimits | None = None,
) -> tuple[ContactState, list[ContactMerged | StageChanged]]:
    """Merge anonymous ``source`` into identified ``target``. Does not mutate either.

    A replayed transfer changes nothing: the merge id with the source's latest
    messageId joins the target's recent ids. A transfer re-sent with *more*
    history (the anonymous contact applied another event before a crash let it
    store its pointer) is merged again; every rule above is idempotent, so only
    the new history counts.

    ``limits`` bound the result: the anonymous contact's traits are added while
    they fit, and the recent ids are the newest that fit.
    """
    if limits is None:
        limits = StateLimits(dedupe_window=dedupe_window)
    the_merge = merge_id(merged_contact_id=merged_contact_id, contact_id=contact_id)
    latest = source.seen_message_ids[-1] if source.seen_message_ids else ""
    transfer_key = f"{the_merge}:{latest}"
    state = target.model_copy(deep=True)
    if transfer_key in target.seen_message_ids or source.identified:
        return state, []
    seen = [*target.seen_message_ids]
    seen += [message for message in source.seen_message_ids if message not in seen]
    state.seen_message_ids = recent_ids([*seen, transfer_key], limits)
    state.traits = merge_traits(target.traits, source.traits, limits)
    outputs: list[ContactMerged | StageChanged] = []
    for funnel in funnels:
        _merge_counters(state, source, funnel)
        _merge_sums(state, source, funnel)
        theirs = source.funnels.get(funnel.name)
        if theirs is None:
            continue
        ours = state.funnels.get(funnel.name)
        merged = _merge_position(funnel, ours, theirs)
        state.funnels[funnel.name] = merged
        outputs.append(
            ContactMerged(
                id=contact_merged_id(funnel=funnel.name, merge_id=the_merge),
                merge_id=the_merge,
                funnel=funnel.name,
                funnel_version=funnel.version,
                contact_id=contact_id,
                merged_contact_id=merged_contact_id,
                current_stage=merged.current,
                furthest_stage=merged.furthest,
                merged_current_stage=theirs.current,
                merged_furthest_stage=theirs.furthest,
                cause_message_id=cause_message_id,
                event_time=event_time,
                processed_at=processed_at,
                traits=dict(state.traits),
            )
        )
        if ours is None or merged.current != ours.current:
            outputs.append(
                stage_changed(
                    funnel,
                    contact_id=contact_id,
                    from_stage=ours.current if ours else None,
                    position=merged,
                    rule_id=MERGE_RULE_ID,
                    cause_id=the_merge,
                    cause_kind="merge",
                    event_time=event_time,
                    processed_at=processed_at,
                    traits=state.traits,
                )
            )
    return state, outputs


def _merge_position(funnel: Funnel, ours: FunnelState | None, theirs: FunnelState) -> FunnelState:
    definition = funnel.definition
    if ours is None or definition.index(ours.current) < 0:
        return theirs.model_copy()
    here, there = definition.index(ours.current), definition.index(theirs.current)
    if definition.ordering == "free":
        takes_theirs = _later(theirs.entered_at, ours.entered_at)
    elif definition.ordering == "strict":
        takes_theirs = there == here + 1
    else:
        takes_theirs = there > here
    position = theirs.model_copy() if takes_theirs else ours.model_copy()
    furthest = max(ours.furthest, theirs.furthest, key=definition.index)
    position.furthest = max(furthest, position.current, key=definition.index)
    return position


def _later(first: datetime | None, second: datetime | None) -> bool:
    return first is not None and (second is None or first > second)


def _merge_counters(state: ContactState, source: ContactState, funnel: Funnel) -> None:
    theirs = source.counters.get(funnel.name, {})
    if not theirs:
        return
    ours = state.counters.setdefault(funnel.name, {})
    for rule in funnel.definition.rules:
        if rule.count is None or rule.id not in theirs:
            continue
        times = list(ours.get(rule.id, []))
        already = set(times)  # E.g. merged by an earlier transfer of the same contact.
        for time in theirs[rule.id]:
            if time not in already:
                times = record_time(rule.count, times, time)
        ours[rule.id] = times


def _merge_sums(state: ContactState, source: ContactState, funnel: Funnel) -> None:
    theirs = source.sums.get(funnel.name, {})
    if not theirs:
        return
    ours = state.sums.setdefault(funnel.name, {})
    for rule in funnel.definition.rules:
        if rule.sum is None or rule.id not in theirs:
            continue
        kept = ours.get(rule.id, SumState())
        merged = SumState(
            entries=list(kept.entries), ignored=kept.ignored + theirs[rule.id].ignored
        )
        for entry in theirs[rule.id].entries:
            merged = record_amount(rule.sum, merged, entry)
        ours[rule.id] = merged
    if not ours:
        state.sums.pop(funnel.name, None)
