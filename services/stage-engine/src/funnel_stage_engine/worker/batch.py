"""A batch of records in the making: what it will publish, and the states to store after.

The handler evaluates a batch's records one after the other. A record reads the
states that earlier records of the same batch produced (kept here in memory, not
yet in the table), so a contact with several events in one batch moves exactly as
if they had come one at a time. What a record produces is staged first and joins
the batch only once the record was handled without error: a record that trips
halfway leaves nothing behind but its dead letter.

Nothing here touches the broker or the table's writes; ``handler.py`` publishes
``outbound`` with one ``publish_all``, and only once every record was
acknowledged stores ``kept()``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from funnel_shared.events import AnyStageOutput
from funnel_shared.publishing import OutboundRecord

from funnel_stage_engine.domain.contact import Outcome, Position
from funnel_stage_engine.domain.engine import ContactState

__all__ = ["Batch", "Inbound", "Outbound", "StateStore", "Tally"]


@dataclass(frozen=True)
class Inbound:
    """One record read from the contact-events topic or the internal command topic."""

    key: bytes | None
    value: bytes
    command: bool = False
    # The faust event it came in: the table store needs it to find the key's partition.
    origin: Any = None
    # Where it was read: a record at or below a position its contact remembers was applied.
    position: Position | None = None


# (topic, record): what ``funnel_shared.publishing.publish_all`` sends.
Outbound = tuple[str, OutboundRecord]


class StateStore(Protocol):
    """Per-contact engine state, as JSON-able values (the faust table in production).

    ``origin`` is the inbound record's ``origin``: reads and writes for a contact
    happen on behalf of one of its own records.
    """

    def get(self, contact_id: str, *, origin: Any) -> Mapping[str, Any] | None: ...

    def set(self, contact_id: str, state: dict[str, Any], *, origin: Any) -> None: ...


@dataclass(frozen=True)
class Tally:
    """What one record came to, counted in the metrics once the batch is stored."""

    outcome: Outcome
    outputs: Sequence[AnyStageOutput] = ()
    reason: str | None = None


@dataclass
class _Kept:
    state: ContactState
    origin: Any
    store: bool


@dataclass
class Batch:
    states: StateStore
    outbound: list[Outbound] = field(default_factory=list)
    tallies: list[Tally] = field(default_factory=list)
    _kept: dict[str, _Kept] = field(default_factory=dict)
    _staged_out: list[Outbound] = field(default_factory=list)
    _staged: dict[str, _Kept] = field(default_factory=dict)
    _origin: Any = None

    def begin(self, origin: Any) -> None:
        """Start the next record."""
        self._staged_out = []
        self._staged = {}
        self._origin = origin

    def state(self, contact_id: str) -> ContactState:
        """The contact's latest state: this batch's if it has one, else the stored one."""
        kept = self._staged.get(contact_id) or self._kept.get(contact_id)
        if kept is not None:
            return kept.state
        return ContactState.from_json(self.states.get(contact_id, origin=self._origin))

    def keep(self, contact_id: str, state: ContactState, *, store: bool = True) -> None:
        """The contact's new state, stored after the batch was published (``store``), or
        only remembered, with its stall deadline noted again."""
        earlier = self._staged.get(contact_id) or self._kept.get(contact_id)
        store = store or (earlier is not None and earlier.store)
        self._staged[contact_id] = _Kept(state, self._origin, store)

    def publish(self, topic: str, record: OutboundRecord) -> None:
        self._staged_out.append((topic, record))

    def commit(self, tally: Tally) -> None:
        """The record is done: its outputs and states join the batch."""
        self.outbound.extend(self._staged_out)
        self._kept.update(self._staged)
        self.tallies.append(tally)
        self.begin(None)

    def discard(self) -> None:
        """The record failed: forget what it staged (its dead letter comes next)."""
        self.begin(self._origin)

    def kept(self) -> Iterator[tuple[str, ContactState, Any, bool]]:
        """(contact, state, origin, store?) for every contact the batch touched."""
        for contact_id, kept in self._kept.items():
            yield contact_id, kept.state, kept.origin, kept.store
