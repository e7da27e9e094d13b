"""Funnel definitions: YAML files, one funnel per file, parsed into pydantic models.

CONTRACT SKELETON (lead): the names and signatures below are what the faust
app builds on. The full definition format (match conditions, count windows,
``from`` stages, backward permission), YAML loading with errors that name the
file and field, the built-in funnels and the content-hash version are still to
be written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["Funnel", "FunnelDefinition", "FunnelDefinitionError", "RuleDefinition", "load_funnels"]

Ordering = Literal["strict", "forward", "free"]


class RuleDefinition(BaseModel):
    id: str
    to: str = Field(description="The target stage.")
    type: str = "track"
    event: str | list[str] | None = None


class FunnelDefinition(BaseModel):
    name: str
    description: str = ""
    stages: list[str]
    ordering: Ordering = "forward"
    rules: list[RuleDefinition]


@dataclass(frozen=True)
class Funnel:
    """A validated definition and its version (a hash of the file's content)."""

    definition: FunnelDefinition
    version: str

    @property
    def name(self) -> str:
        return self.definition.name


class FunnelDefinitionError(ValueError):
    """A definition file is invalid. The message names the file and the field."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        super().__init__("\n".join(f"{path}: {problem}" for problem in problems))


def load_funnels(directory: Path | None = None) -> list[Funnel]:
    """Every funnel in ``directory`` (the built-ins when None), sorted by name."""
    if directory is not None:
        raise NotImplementedError("loading funnel files is not written yet")
    lifecycle = FunnelDefinition(
        name="lifecycle",
        stages=["visitor", "lead", "prospect", "customer", "repeat_customer", "advocate"],
        rules=[RuleDefinition(id="lifecycle.signed-up", to="lead", event="Signed Up")],
    )
    return [Funnel(definition=lifecycle, version="builtin-1")]
