"""Funnel definitions: YAML files, one funnel per file, parsed into pydantic models.

The format is described in ``docs/funnels.md``; the built-in funnels in
``domain/funnels/`` are worked examples. Loading never half-succeeds: a
file with a problem raises ``FunnelDefinitionError`` naming the file and the
field, e.g. ``lifecycle.yaml: rules[2].match.properties.price.gt: Input should
be a valid number``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from funnel_shared.definition_files import (
    SUFFIXES,
    DefinitionFileError,
    definition_files,
    parse_definition,
)
from funnel_shared.durations import PositiveDuration
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from funnel_stage_engine.domain.matching import Match
from funnel_stage_engine.domain.windows import CountWindow, SumWindow

__all__ = [
    "BUILTIN_DIRECTORY",
    "Funnel",
    "FunnelDefinition",
    "FunnelDefinitionError",
    "Ordering",
    "RuleDefinition",
    "StallRule",
    "check_funnels",
    "load_funnels",
    "parse_funnel",
]

Ordering = Literal["strict", "forward", "free"]
# The built-in definitions ship as package data in funnel_stage_engine/funnels/.
BUILTIN_DIRECTORY = "funnels"
_NAME = r"^[a-z0-9][a-z0-9_-]*$"


class RuleDefinition(BaseModel):
    """Move a contact to stage ``to`` when an event matches."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(min_length=1)
    to: str = Field(description="The target stage.")
    match: list[Match] = Field(
        min_length=1, description="One match, or a list of which any one may match."
    )
    count: CountWindow | None = Field(default=None, description="Fire on the Nth match only.")
    sum: SumWindow | None = Field(
        default=None,
        description="Fire once the matching events' amounts add up to at_least (with count: both).",
    )
    from_: list[str] | None = Field(
        default=None, alias="from", description="Only from these current stages."
    )
    backward: bool = Field(default=False, description="May move to an earlier stage.")

    @field_validator("match", "from_", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict | str) else value


class StallRule(BaseModel):
    """``{stage: lead, after: 14d, move_to: dormant}``: no progress for ``after`` is a stall."""

    model_config = ConfigDict(extra="forbid")

    stage: str
    after: PositiveDuration = Field(description="A duration such as 30s, 1.5h, 14d or 2w.")
    move_to: str | None = Field(default=None, description="Optionally move stalled contacts.")


class FunnelDefinition(BaseModel):
    """One funnel: its ordered stages, how contacts may move, and the rules that move them."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME)
    description: str = ""
    stages: list[Annotated[str, Field(pattern=_NAME)]] = Field(min_length=1)
    ordering: Ordering = "forward"
    rules: list[RuleDefinition] = Field(min_length=1)
    stalls: list[StallRule] = Field(
        default_factory=list, description="Per stage: how long without progress is a stall."
    )

    _positions: dict[str, int] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> FunnelDefinition:
        problems = list(_semantic_problems(self))
        if problems:
            raise ValueError("\n".join(problems))
        self._positions = {stage: index for index, stage in enumerate(self.stages)}
        return self

    def stall_rule(self, stage: str | None) -> StallRule | None:
        """The stall rule for ``stage``, if the funnel declares one."""
        return next((rule for rule in self.stalls if rule.stage == stage), None)

    def index(self, stage: str | None) -> int:
        """The stage's position; -1 for no stage or one this definition does not know."""
        return -1 if stage is None else self._positions.get(stage, -1)


def _semantic_problems(definition: FunnelDefinition) -> Iterator[str]:
    stages = set(definition.stages)
    known = ", ".join(definition.stages)
    for stage, times in Counter(definition.stages).items():
        if times > 1:
            yield f"stages: {stage!r} is listed {times} times"
    for rule_id, times in Counter(rule.id for rule in definition.rules).items():
        if times > 1:
            yield f"rules: the rule id {rule_id!r} is used {times} times"
    for index, rule in enumerate(definition.rules):
        if rule.to not in stages:
            yield f"rules[{index}].to: unknown stage {rule.to!r} (stages: {known})"
        for position, stage in enumerate(rule.from_ or []):
            if stage not in stages:
                yield f"rules[{index}].from[{position}]: unknown stage {stage!r} (stages: {known})"
        if rule.sum is not None:
            yield from _sum_problems(index, rule)
    for index, stall in enumerate(definition.stalls):
        if stall.stage not in stages:
            yield f"stalls[{index}].stage: unknown stage {stall.stage!r} (stages: {known})"
        if stall.move_to is not None and stall.move_to not in stages:
            yield f"stalls[{index}].move_to: unknown stage {stall.move_to!r} (stages: {known})"
        if stall.move_to == stall.stage:
            yield f"stalls[{index}].move_to: a stall cannot move a contact to the same stage"
    for stage, times in Counter(stall.stage for stall in definition.stalls).items():
        if times > 1:
            yield f"stalls: the stage {stage!r} has {times} stall rules"


def _sum_problems(index: int, rule: RuleDefinition) -> Iterator[str]:
    """A summed property that the rule's own match pins to something other than a number."""
    assert rule.sum is not None
    path = rule.sum.property
    for position, match in enumerate(rule.match):
        condition = match.properties.get(path)
        if condition is None:
            continue
        where = f"rules[{index}].match[{position}].properties.{path}"
        op = condition.operator
        pinned = [condition.equals] if op == "equals" else condition.in_ if op == "in_" else []
        odd = [value for value in pinned or [] if not _number(value)]
        if op in ("equals", "in_") and odd:
            yield (
                f"{where}: the rule sums {path}, but its match requires {odd[0]!r},"
                " which is not a number"
            )
        elif op in ("prefix", "contains") or (op == "exists" and condition.exists is False):
            yield f"{where}: the rule sums {path}, but its match requires it not to be a number"


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


@dataclass(frozen=True)
class Funnel:
    """A validated definition and its version (a hash of the file's content)."""

    definition: FunnelDefinition
    version: str
    source: Path | None = None  # The file it came from, for messages.

    @property
    def name(self) -> str:
        return self.definition.name


class FunnelDefinitionError(DefinitionFileError):
    """A funnel file is invalid. The message names the file and the field."""


def parse_funnel(content: bytes, *, path: Path) -> Funnel:
    """One definition file's bytes as a ``Funnel``; ``path`` is only for messages.

    The version is a hash of the file's bytes, so it changes whenever the file does.
    """
    definition = parse_definition(
        content,
        FunnelDefinition,
        path=path,
        holds="one funnel (a mapping)",
        error=FunnelDefinitionError,
    )
    version = hashlib.sha256(content).hexdigest()[:12]
    return Funnel(definition=definition, version=version, source=path)


def check_funnels(
    directory: Path | None = None,
) -> tuple[list[Funnel], list[FunnelDefinitionError]]:
    """Every valid funnel in ``directory`` (the built-ins when None), and every problem found."""
    funnels: list[Funnel] = []
    errors: list[FunnelDefinitionError] = []
    files = _builtin_files() if directory is None else _directory_files(directory, errors)
    defined_in: dict[str, Path] = {}
    for path, content in files:
        try:
            funnel = parse_funnel(content, path=path)
        except FunnelDefinitionError as exc:
            errors.append(exc)
            continue
        if funnel.name in defined_in:
            first = defined_in[funnel.name]
            problem = f"name: the funnel {funnel.name!r} is already defined in {first}"
            errors.append(FunnelDefinitionError(path, [problem]))
            continue
        defined_in[funnel.name] = path
        funnels.append(funnel)
    return sorted(funnels, key=lambda funnel: funnel.name), errors


def load_funnels(directory: Path | None = None) -> list[Funnel]:
    """Every funnel in ``directory`` (the built-ins when None), sorted by name.

    Raises the first ``FunnelDefinitionError`` if any file is invalid: a
    service must not start with some of its funnels silently missing.
    """
    funnels, errors = check_funnels(directory)
    if errors:
        raise errors[0]
    return funnels


def _builtin_files() -> list[tuple[Path, bytes]]:
    root = resources.files("funnel_stage_engine.domain").joinpath(BUILTIN_DIRECTORY)
    entries = sorted(
        (entry for entry in root.iterdir() if entry.name.endswith(SUFFIXES)),
        key=lambda entry: entry.name,
    )
    return [(Path(str(entry)), entry.read_bytes()) for entry in entries]


def _directory_files(
    directory: Path, errors: list[FunnelDefinitionError]
) -> list[tuple[Path, bytes]]:
    try:
        paths = definition_files(
            directory, required="funnel definitions", error=FunnelDefinitionError
        )
    except FunnelDefinitionError as exc:
        errors.append(exc)
        return []
    return [(path, path.read_bytes()) for path in paths]
