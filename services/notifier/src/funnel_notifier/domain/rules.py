"""Follow-up rules: YAML files, one funnel per file, parsed into pydantic models.

The format is in the README ("Follow-up rules"); the shipped examples in
``funnel_notifier/builtin_rules/`` cover the built-in funnels. Loading never
half-succeeds: a file with a problem raises ``RuleFileError`` naming the file
and the field, e.g.
``lifecycle.yaml: rules[1].after: '2 days' is not a duration like 30s, 15m, 2h, 2d``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "Action",
    "EmailAction",
    "FollowUpRule",
    "KafkaAction",
    "LoadedRule",
    "RuleFile",
    "RuleFileError",
    "WebhookAction",
    "builtin_rules_dir",
    "load_rules",
    "parse_duration",
    "parse_rule_file",
]

_NAME = r"^[a-z0-9][a-z0-9_-]*$"
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_ENV = r"^[A-Z_][A-Z0-9_]*$"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SUFFIXES = (".yaml", ".yml")


def parse_duration(value: str | int | float) -> timedelta:
    """``30s``, ``15m``, ``2h``, ``2d``, ``1w`` (or a number of seconds) as a timedelta."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(f"{value!r} is not a duration like 30s, 15m, 2h, 2d")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return timedelta(seconds=seconds)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class WebhookAction(_Strict):
    """POST the trigger, signed per Standard Webhooks, to a URL."""

    type: Literal["webhook"]
    url: str | None = Field(default=None, pattern=r"^https?://")
    url_env: str | None = Field(default=None, pattern=_ENV, description="Read the URL from env.")
    secret_env: str = Field(pattern=_ENV, description="Env var holding a whsec_ secret.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")

    @model_validator(mode="after")
    def _one_url(self) -> WebhookAction:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        reserved = {name.lower() for name in self.headers} & {
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "content-type",
        }
        if reserved:
            raise ValueError(f"headers: {', '.join(sorted(reserved))} are set by the notifier")
        return self


class EmailAction(_Strict):
    """Render a template (subject, text and HTML parts) and send it over SMTP."""

    type: Literal["email"]
    template: str = Field(pattern=_NAME, description="templates/<name>.{subject,txt,html}.j2")
    to: str = Field(min_length=1, description="Recipient, a template, e.g. '{{ traits.email }}'.")
    from_: str = Field(alias="from", min_length=3, description="The From header.")


class KafkaAction(_Strict):
    """Publish a follow-up task event for another system to act on."""

    type: Literal["kafka"]
    topic: str = Field(min_length=1)
    task: str = Field(pattern=_ID, description="What to do, e.g. 'crm.call'.")


Action = Annotated[WebhookAction | EmailAction | KafkaAction, Field(discriminator="type")]


class FollowUpRule(_Strict):
    """When a contact enters (or stalls in) a stage, or is merged: do something, maybe later."""

    id: str = Field(pattern=_ID)
    trigger: Literal["entered", "stalled", "merged"]
    stage: str | None = Field(default=None, pattern=_NAME)
    after: timedelta = Field(default=timedelta(0), description="Delay, e.g. 2d.")
    unless: Literal["moved_on"] | None = Field(
        default=None, description="moved_on: cancel if the contact left the stage by then."
    )
    action: Action

    @field_validator("after", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return value if isinstance(value, timedelta) else parse_duration(value)

    @model_validator(mode="after")
    def _consistent(self) -> FollowUpRule:
        if self.trigger == "merged" and self.stage is not None:
            raise ValueError("stage: a merged trigger applies to the whole funnel; drop stage")
        if self.trigger != "merged" and self.stage is None:
            raise ValueError(f"stage: required for a {self.trigger} trigger")
        if self.unless is not None and self.trigger == "merged":
            raise ValueError("unless: moved_on needs a stage to move on from")
        return self


class RuleFile(_Strict):
    """One file: the follow-up rules of one funnel."""

    funnel: str = Field(pattern=_NAME)
    description: str = ""
    rules: list[FollowUpRule] = Field(min_length=1)


class RuleFileError(ValueError):
    """A rule file is invalid. The message names the file and the field."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        super().__init__("\n".join(f"{path}: {problem}" for problem in problems))


def parse_rule_file(content: bytes | str, *, path: Path) -> RuleFile:
    """One file's content as a ``RuleFile``; ``path`` is only for messages."""
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise RuleFileError(path, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(data, dict):
        kind = "nothing" if data is None else type(data).__name__
        raise RuleFileError(
            path, [f"the file must hold a mapping with funnel and rules; got {kind}"]
        )
    try:
        return RuleFile.model_validate(data)
    except ValidationError as exc:
        raise RuleFileError(path, list(_problems(exc))) from exc


def _problems(exc: ValidationError) -> Iterator[str]:
    for error in exc.errors():
        # Drop the union tags pydantic inserts (e.g. "webhook") from the location.
        location = [part for part in error["loc"] if part not in ("webhook", "email", "kafka")]
        field = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in location
        ).lstrip(".")
        message = str(error["msg"]).removeprefix("Value error, ")
        yield f"{field or '(top level)'}: {message}"


@dataclass(frozen=True)
class LoadedRule:
    """A rule with the funnel it belongs to and the file it came from."""

    funnel: str
    rule: FollowUpRule
    source: Path


def builtin_rules_dir() -> Path:
    """The shipped example rules and templates (package data)."""
    return Path(str(resources.files("funnel_notifier") / "builtin_rules"))


def load_rules(directory: Path) -> list[LoadedRule]:
    """Every rule file in ``directory``; raises ``RuleFileError`` for the first bad file.

    Rule ids must be unique across all files: a follow-up is unique on
    (stage change id, rule id).
    """
    if not directory.is_dir():
        raise RuleFileError(directory, ["not a directory"])
    loaded: list[LoadedRule] = []
    for path in sorted(p for p in directory.iterdir() if p.suffix in _SUFFIXES):
        rule_file = parse_rule_file(path.read_bytes(), path=path)
        loaded += [LoadedRule(rule_file.funnel, rule, path) for rule in rule_file.rules]
    duplicates = [rid for rid, n in Counter(r.rule.id for r in loaded).items() if n > 1]
    if duplicates:
        where = {r.source for r in loaded if r.rule.id in duplicates}
        problems = [f"rule id {rid!r} is used more than once" for rid in duplicates]
        raise RuleFileError(sorted(where)[0], problems)
    return loaded
