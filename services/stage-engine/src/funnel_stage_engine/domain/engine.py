"""The pure rule engine: ``(state, event) -> (new state, outputs)``.

No Kafka, no database, no clock: the caller passes ``processed_at`` and the
funnels. The state is a plain JSON-able value, so the faust table can store it
as it is.

Per event, in order:
1. A ``messageId`` the contact already had (within the last ``dedupe_window``
   messages) changes nothing and yields nothing.
2. The event's contact traits are merged into the known traits.
3. Every funnel is evaluated on its own (``moves.evaluate_funnel``): at most
   one move per funnel per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from funnel_shared.events import AnyStageOutput, ContactEvent

from funnel_stage_engine.domain.definitions import Funnel
from funnel_stage_engine.domain.matching import contact_traits
from funnel_stage_engine.domain.moves import evaluate_funnel
from funnel_stage_engine.domain.state import ContactState, FunnelState

__all__ = [
    "DEFAULT_DEDUPE_WINDOW",
    "ContactState",
    "Evaluation",
    "FunnelState",
    "evaluate",
]

# 200 message ids of ~40 bytes keep a contact's state near 10 KB at most, while
# covering any realistic burst of client or producer retries.
DEFAULT_DEDUPE_WINDOW = 200


@dataclass
class Evaluation:
    state: ContactState
    outputs: list[AnyStageOutput] = field(default_factory=list)


def evaluate(
    state: ContactState,
    event: ContactEvent,
    *,
    funnels: Sequence[Funnel],
    processed_at: datetime,
    contact_id: str | None = None,
    dedupe_window: int = DEFAULT_DEDUPE_WINDOW,
) -> Evaluation:
    """Evaluate ``event`` against every funnel. Does not mutate ``state``.

    ``contact_id`` defaults to the event's contact key; an anonymous event
    forwarded to the contact it was merged into is evaluated for that contact.
    """
    contact = contact_id if contact_id is not None else event.contact_key
    new_state = state.model_copy(deep=True)
    if event.message_id in state.seen_message_ids:
        return Evaluation(state=new_state)
    new_state.seen_message_ids = [*state.seen_message_ids, event.message_id][-dedupe_window:]
    new_state.traits.update(contact_traits(event))
    if event.user_id is not None and event.user_id == contact:
        new_state.identified = True
    configured = {funnel.name for funnel in funnels}
    # Counters of funnels no longer configured can never fire again: keep the state bounded.
    new_state.counters = {
        name: rules for name, rules in new_state.counters.items() if name in configured
    }
    new_state.sums = {name: rules for name, rules in new_state.sums.items() if name in configured}
    outputs: list[AnyStageOutput] = []
    for funnel in funnels:
        output = evaluate_funnel(
            new_state, funnel, event, contact_id=contact, processed_at=processed_at
        )
        if output is not None:
            outputs.append(output)
    return Evaluation(state=new_state, outputs=outputs)
