"""The examples' scripted journeys: ``examples/<name>/journey.yaml``, loaded and turned
into a Segment batch.

A journey lists contacts (a short id and what they do) and their events, each a
Segment message with ``ago``: how long before the moment the journey is played it
happened. Placing events in the past lets delayed follow-ups (``after: 2d``) come
due, or be cancelled, as soon as the journey has gone through. Contact ids get a
suffix per run, so a journey can be played again on the same stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from funnel_shared.definition_files import DefinitionFileError, load_definition
from funnel_shared.durations import Duration
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Example",
    "Journey",
    "JourneyEvent",
    "contact_id",
    "find_examples",
    "journey_batch",
    "load_example",
]

# The message fields that name a contact: each gets the run's suffix.
_ID_FIELDS = ("userId", "anonymousId", "previousId")


class JourneyEvent(BaseModel):
    """One Segment message (``type``, ``userId``, ``event``, ``properties``, ...) and
    when it happened."""

    model_config = ConfigDict(extra="allow")

    ago: Duration = Field(description="How long before the journey is played: 3d, 12h, 30m.")
    type: str = Field(min_length=1)


class Journey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str
    contacts: dict[str, str] = Field(min_length=1, description="Contact id: what they do.")
    events: list[JourneyEvent] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_contacts(self) -> Journey:
        for index, event in enumerate(self.events):
            for field in _ID_FIELDS:
                value = (event.model_extra or {}).get(field)
                if value is not None and value not in self.contacts:
                    raise ValueError(f"events[{index}].{field}: {value!r} is not in contacts")
        return self


@dataclass(frozen=True)
class Example:
    """One directory of ``examples/``: funnels, follow-up rules, a journey, a README."""

    name: str
    directory: Path
    journey: Journey

    @property
    def funnels(self) -> Path:
        return self.directory / "funnels"

    @property
    def rules(self) -> Path:
        return self.directory / "rules"


def load_example(directory: Path) -> Example:
    """``directory``'s journey, validated; ``DefinitionFileError`` names the field."""
    journey = load_definition(directory / "journey.yaml", Journey, error=DefinitionFileError)
    return Example(name=directory.name, directory=directory, journey=journey)


def find_examples(root: Path) -> list[str]:
    """The names of the examples under ``root`` (directories holding a journey)."""
    if not root.is_dir():
        return []
    return sorted(path.parent.name for path in root.glob("*/journey.yaml"))


def contact_id(name: str, run: str) -> str:
    """The id a journey's contact ``name`` has in the run ``run``."""
    return f"{name}-{run}"


def journey_batch(journey: Journey, *, run: str, now: datetime) -> list[dict[str, Any]]:
    """The journey as Segment messages for ``/v1/batch``, in file order."""
    messages = []
    for index, event in enumerate(journey.events):
        message = dict(event.model_extra or {})
        for field in _ID_FIELDS:
            if field in message:
                message[field] = contact_id(message[field], run)
        at = now - event.ago
        message["type"] = event.type
        # A stable id per run and event: replaying the same run changes nothing.
        message.setdefault("messageId", f"journey-{run}-{index}")
        message["timestamp"] = at.isoformat()
        messages.append(message)
    return messages
