"""Records on the stage engine's internal command topic, keyed by the contact they act on.

The topic has as many partitions as ``funnel.contact-events.v1`` and the same
(default, murmur2) partitioner, so a contact's commands and events land on the
same partition number, processed by the same worker against the same table
partition. Internal: not a public contract, but versioned by ``type``.

- ``link`` (keyed by anonymousId A): U claims A; decided against A's state.
- ``transfer`` (keyed by userId U): A's state, to be merged into U's.
- ``forward`` (keyed by U): an anonymous-only event of A, which now belongs to U.
- ``tick`` (keyed by a contact): event time has reached one of its stall deadlines.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from funnel_shared.events import ContactEvent
from pydantic import AwareDatetime, BaseModel, Field, TypeAdapter

__all__ = ["Command", "Forward", "Link", "Tick", "Transfer", "decode_command"]


class Link(BaseModel):
    type: Literal["link"] = "link"
    anonymous_id: str
    user_id: str
    message_id: str = Field(description="The identify or alias that linked them.")
    event_time: AwareDatetime


class Transfer(BaseModel):
    type: Literal["transfer"] = "transfer"
    anonymous_id: str
    user_id: str
    message_id: str
    event_time: AwareDatetime
    state: dict[str, Any] = Field(description="The anonymous contact's state before the merge.")


class Forward(BaseModel):
    type: Literal["forward"] = "forward"
    user_id: str
    event: ContactEvent
    origin: str | None = Field(
        default=None,
        description="Where the event was read ('topic:partition'), for replay positions.",
    )
    origin_offset: int | None = Field(default=None, description="Its offset there.")


class Tick(BaseModel):
    type: Literal["tick"] = "tick"
    contact_id: str
    now: AwareDatetime = Field(description="Event time (the partition's watermark).")


Command = Annotated[Link | Transfer | Forward | Tick, Field(discriminator="type")]
_COMMAND: TypeAdapter[Link | Transfer | Forward | Tick] = TypeAdapter(Command)


def decode_command(value: bytes) -> Link | Transfer | Forward | Tick:
    return _COMMAND.validate_json(value)
