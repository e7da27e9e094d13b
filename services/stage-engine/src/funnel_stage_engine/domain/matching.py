"""Which events a rule matches: the ``match`` part of a funnel rule, and its evaluation.

A match names the event type, the track event name(s), the page or screen
name(s), the source (its name or kind: ``source: {kind: server}`` counts only
events sent with a secret server write key, which ingest stamps on every
event), and conditions on ``properties``, ``traits`` and ``context``. Each
condition is keyed by a dotted path (``page.path`` is ``context["page"]["path"]``)
and is either a literal (equality) or an object with exactly one operator. The
operators are ``funnel_shared.conditions`` (the notifier's ``when`` uses the same).

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from funnel_shared.conditions import OPERATORS, Condition, all_hold
from funnel_shared.events import ContactEvent, SourceKind
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "OPERATORS",
    "Condition",
    "EventType",
    "Match",
    "SourceMatch",
    "contact_traits",
    "matches",
]

EventType = Literal["track", "identify", "page", "screen", "group", "alias"]


class SourceMatch(BaseModel):
    """Which sources an event must come from: by name, by kind, or both (each one or a list)."""

    model_config = ConfigDict(extra="forbid")

    name: list[str] | None = Field(default=None, description="Source name(s), as in ingest.")
    kind: list[SourceKind] | None = Field(
        default=None, description="browser (a public key) or server (a secret key)."
    )

    @field_validator("name", "kind", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("name", "kind")
    @classmethod
    def _not_empty(cls, value: list[Any] | None) -> list[Any] | None:
        if value is not None and not value:
            raise ValueError("give at least one, or leave the field out")
        return value

    @model_validator(mode="after")
    def _something(self) -> SourceMatch:
        if self.name is None and self.kind is None:
            raise ValueError("give name, kind or both (e.g. source: {kind: server})")
        return self

    def holds(self, event: ContactEvent) -> bool:
        if self.name is not None and event.source not in self.name:
            return False
        return self.kind is None or event.source_kind in self.kind


class Match(BaseModel):
    """What an event must look like. Every given part must hold; absent parts match anything."""

    model_config = ConfigDict(extra="forbid")

    type: list[EventType] | None = Field(default=None, description="One type or a list.")
    event: list[str] | None = Field(default=None, description="Track event name(s).")
    name: list[str] | None = Field(default=None, description="Page or screen name(s).")
    source: SourceMatch | None = Field(
        default=None, description="Only events from these sources, e.g. {kind: server}."
    )
    properties: dict[str, Condition] = Field(default_factory=dict)
    traits: dict[str, Condition] = Field(default_factory=dict)
    context: dict[str, Condition] = Field(default_factory=dict)

    @field_validator("type", "event", "name", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("event", "name")
    @classmethod
    def _not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("give at least one name, or leave the field out")
        return value


def matches(match: Match, event: ContactEvent) -> bool:
    """Whether ``event`` satisfies every part of ``match``."""
    if match.type is not None and event.type not in match.type:
        return False
    if match.event is not None and (event.type != "track" or event.event not in match.event):
        return False
    if match.name is not None and (
        event.type not in ("page", "screen") or event.name not in match.name
    ):
        return False
    if match.source is not None and not match.source.holds(event):
        return False
    sources: tuple[tuple[dict[str, Condition], Mapping[str, Any]], ...] = (
        (match.properties, event.properties),
        (match.traits, contact_traits(event)),
        (match.context, event.context),
    )
    return all(all_hold(conditions, values) for conditions, values in sources)


def contact_traits(event: ContactEvent) -> dict[str, Any]:
    """The traits an event tells about its contact: ``context.traits``, then identify traits.

    A group call's ``traits`` describe the group, not the contact, so only
    identify calls contribute their top-level traits.
    """
    context_traits = event.context.get("traits")
    traits = dict(context_traits) if isinstance(context_traits, Mapping) else {}
    if event.type == "identify":
        traits.update(event.traits)
    return traits
