"""Stall deadlines on the app side: the due-contact index and how event time advances.

The pure engine decides when a stay stalls; this module only supplies time.

- Per partition, the watermark is the latest event time seen on it (contact
  events and forwarded events), but never more than ``future_tolerance_s``
  past the wall clock: event times come from clients, and one event dated in
  the year 9999 must not fire every other contact's stall. Stalls fire from
  real time, not from the newest client timestamp.
- A partition that has seen nothing for ``idle_after`` seconds (wall clock)
  advances with the wall clock instead: ``max(watermark, now - lateness)``.
  A busy partition never uses the wall clock, so a lagging consumer cannot
  stall a contact whose progress is still unread.
- Every ``interval`` the timer sends a tick (keyed by the contact, through the
  command topic, so it is processed in order with the contact's events and
  under the publish-then-store rule) for each contact of an assigned partition
  whose earliest deadline is at or before that partition's time.

The index (contact -> earliest deadline) lives in memory. It is filled as
states are stored and rebuilt from the (changelogged) contact table after
every rebalance, so deadlines survive restarts and move with their partition.
A tick that is lost is sent again by the next timer run; one processed twice
fires nothing the second time, as the engine clears the deadline it fired.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka.partitioner import murmur2

from funnel_stage_engine.domain.stalls import next_deadline
from funnel_stage_engine.domain.state import ContactState

__all__ = ["DeadlineIndex", "partition_of"]


def partition_of(key: str, partitions: int) -> int:
    """The partition aiokafka's (and Kafka's) default partitioner gives ``key``."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions


class DeadlineIndex:
    def __init__(
        self,
        *,
        partitions: int,
        idle_after_s: float,
        lateness_s: float,
        future_tolerance_s: float = 60.0,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._partitions = partitions
        self._tolerance = timedelta(seconds=future_tolerance_s)
        self._wall_clock = wall_clock
        self._idle_after = idle_after_s
        self._lateness = timedelta(seconds=lateness_s)
        self._due: dict[int, dict[str, datetime]] = {}
        self._watermarks: dict[int, datetime] = {}
        self._last_seen: dict[int, float] = {}
        self._sent: dict[str, datetime] = {}  # Ticks in flight: not re-sent every run.

    def note(self, contact_id: str, deadline: datetime | None) -> None:
        partition = partition_of(contact_id, self._partitions)
        self._sent.pop(contact_id, None)
        if deadline is None:
            self._due.get(partition, {}).pop(contact_id, None)
        else:
            self._due.setdefault(partition, {})[contact_id] = deadline

    def unsent(self, contact_id: str) -> None:
        """The contact's tick was not acknowledged: the next ``due`` sends it again."""
        self._sent.pop(contact_id, None)

    def saw(self, contact_id: str, event_time: datetime) -> None:
        """An event of ``contact_id`` at ``event_time`` was read: its partition's time advances."""
        partition = partition_of(contact_id, self._partitions)
        event_time = min(event_time, self._wall_clock() + self._tolerance)
        current = self._watermarks.get(partition)
        if current is None or event_time > current:
            self._watermarks[partition] = event_time
        self._last_seen[partition] = time.monotonic()

    def rebuild(
        self, states: Iterable[tuple[str, Mapping[str, Any] | None]], assigned: set[int]
    ) -> None:
        """Forget everything and index the deadlines of contacts on ``assigned`` partitions."""
        self._due = {}
        self._sent = {}
        for contact_id, data in states:
            if partition_of(contact_id, self._partitions) not in assigned:
                continue  # A standby copy: another worker owns it.
            self.note(contact_id, next_deadline(ContactState.from_json(data)))
        for partition in assigned:
            self._last_seen.setdefault(partition, time.monotonic())

    def now(self, partition: int) -> datetime | None:
        """Event time on ``partition``: its watermark, or the wall clock once it is idle."""
        watermark = self._watermarks.get(partition)
        wall_now = self._wall_clock()
        if watermark is not None:
            # Seen within the tolerance of an earlier wall clock: within it of this one too.
            watermark = min(watermark, wall_now + self._tolerance)
        last = self._last_seen.get(partition)
        if last is not None and time.monotonic() - last >= self._idle_after:
            wall = wall_now - self._lateness
            return wall if watermark is None or wall > watermark else watermark
        return watermark

    def due(self, assigned: set[int]) -> list[tuple[str, datetime]]:
        """(contact, event time now) for every contact whose tick should be sent now."""
        found = []
        for partition in sorted(assigned):
            now = self.now(partition)
            if now is None:
                continue
            for contact_id, deadline in self._due.get(partition, {}).items():
                if deadline <= now and self._sent.get(contact_id) != deadline:
                    found.append((contact_id, now))
                    self._sent[contact_id] = deadline
        return found
