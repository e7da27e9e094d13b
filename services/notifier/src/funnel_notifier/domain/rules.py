"""Follow-up rules: YAML files, one funnel per file, parsed into pydantic models.

The format is in ``docs/notifier.md`` ("Follow-up rules"); the shipped examples in
``funnel_notifier/builtin_rules/`` cover the built-in funnels. Loading never
half-succeeds: a file with a problem raises ``RuleFileError`` naming the file
and the field, e.g.
``lifecycle.yaml: rules[1].after: '2 days' is not a duration like 30s, 15m, 1.5h, 14d or 2w``.
Reading the YAML and naming the fields is ``funnel_shared.definition_files``;
the duration grammar is ``funnel_shared.durations``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from funnel_shared.conditions import Condition
from funnel_shared.definition_files import DefinitionFileError, definition_files, parse_definition
from funnel_shared.durations import Duration
from funnel_shared.events import SourceKind
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "Action",
    "EmailAction",
    "FollowUpRule",
    "KafkaAction",
    "LoadedRule",
    "RuleFile",
    "RuleFileError",
    "SourceCondition",
    "WebhookAction",
    "WhenCondition",
    "builtin_rules_dir",
    "load_rules",
    "parse_rule_file",
    "webhook_url_problem",
]

_NAME = r"^[a-z0-9][a-z0-9_-]*$"
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_ENV = r"^[A-Z_][A-Z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def webhook_url_problem(url: str, *, hosts: frozenset[str]) -> str | None:
    """Why ``url`` may not be a webhook's target, or None.

    Only ``http`` and ``https``, with a host, no credentials and no blanks; and when
    ``hosts`` is not empty, only to one of those hosts (compared lower-case). Webhook URLs
    come from rule files and the environment variables they name, never from event data.
    """
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        return "the webhook URL holds blanks or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number.
    except ValueError as exc:
        return f"the webhook URL does not parse: {exc}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"the webhook URL's scheme is {parts.scheme or 'missing'}: only http and https"
    if not parts.hostname:
        return "the webhook URL has no host"
    if parts.username is not None or parts.password is not None:
        return "the webhook URL holds credentials: put them in headers instead"
    if hosts and parts.hostname.lower() not in hosts:
        return f"the webhook URL's host {parts.hostname} is not one of hosts: {sorted(hosts)}"
    return None


class WebhookAction(_Strict):
    """POST the trigger, signed per Standard Webhooks, to a URL."""

    type: Literal["webhook"]
    url: str | None = Field(default=None, pattern=r"^https?://")
    url_env: str | None = Field(default=None, pattern=_ENV, description="Read the URL from env.")
    hosts: list[str] = Field(
        default_factory=list,
        description="The only hosts the URL may name (checked for url_env URLs at start-up).",
    )
    secret_env: str = Field(pattern=_ENV, description="Env var holding a whsec_ secret.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """The hosts this rule may post to: its ``hosts``, else the host of its ``url``."""
        if self.hosts:
            return frozenset(host.lower() for host in self.hosts)
        if self.url is not None:
            return frozenset({(urlsplit(self.url).hostname or "").lower()})
        return frozenset()

    @model_validator(mode="after")
    def _one_url(self) -> WebhookAction:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        if self.url is not None:
            problem = webhook_url_problem(self.url, hosts=self.allowed_hosts)
            if problem is not None:
                raise ValueError(problem)
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


class SourceCondition(_Strict):
    """``source: {kind: server}``: only stage changes caused by an event from such a source.

    The stage change carries its causing event's source and kind
    (``causeSource``, ``causeSourceKind``), as ingest stamped them.
    """

    name: tuple[str, ...] | None = Field(default=None, description="Source name(s).")
    kind: tuple[SourceKind, ...] | None = Field(default=None, description="browser or server.")

    @field_validator("name", "kind", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _something(self) -> SourceCondition:
        if not self.name and not self.kind:
            raise ValueError("give name, kind or both (e.g. source: {kind: server})")
        return self

    def holds(self, source: str | None, kind: str | None) -> bool:
        if self.name and source not in self.name:
            return False
        return not self.kind or kind in self.kind


class WhenCondition(_Strict):
    """``when: {traits: {plan: pro}, change: {fromStage: lead}}``: only for this segment.

    Each part maps a dotted path to a condition, with the same operators as a
    funnel rule's ``match`` (``funnel_shared.conditions``): a literal (equality)
    or one of equals, in, exists, gt, gte, lt, lte, prefix, contains. ``traits``
    are the contact's traits carried by the triggering record; ``change`` is the
    triggering record itself, by its wire (camelCase) field names: ``fromStage``,
    ``ruleId``, ``causeSource``, ``explanation.sum.total``, ... Every condition
    must hold; a missing value satisfies only ``exists: false``.
    """

    traits: dict[str, Condition] = Field(default_factory=dict)
    change: dict[str, Condition] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _something(self) -> WhenCondition:
        if not self.traits and not self.change:
            raise ValueError("give traits, change or both (e.g. when: {traits: {plan: pro}})")
        return self


class FollowUpRule(_Strict):
    """When a contact enters (or stalls in) a stage, or is merged: do something, maybe later."""

    id: str = Field(pattern=_ID)
    trigger: Literal["entered", "stalled", "merged"]
    stage: str | None = Field(default=None, pattern=_NAME)
    # Zero is allowed: a follow-up may be immediate (the default).
    after: Duration = Field(default=timedelta(0), description="Delay, e.g. 2d.")
    unless: Literal["moved_on"] | None = Field(
        default=None, description="moved_on: cancel if the contact left the stage by then."
    )
    source: SourceCondition | None = Field(
        default=None,
        description="entered only: the change's causing event came from such a source.",
    )
    when: WhenCondition | None = Field(
        default=None,
        description="Only for contacts whose traits and triggering record satisfy these.",
    )
    action: Action

    @model_validator(mode="after")
    def _consistent(self) -> FollowUpRule:
        if self.source is not None and self.trigger != "entered":
            raise ValueError(
                f"source: only an entered trigger has a causing event; not {self.trigger}"
            )
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


class RuleFileError(DefinitionFileError):
    """A rule file is invalid. The message names the file and the field."""


def parse_rule_file(content: bytes | str, *, path: Path) -> RuleFile:
    """One file's content as a ``RuleFile``; ``path`` is only for messages."""
    return parse_definition(
        content,
        RuleFile,
        path=path,
        holds="a mapping with funnel and rules",
        error=RuleFileError,
    )


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
    loaded: list[LoadedRule] = []
    for path in definition_files(directory, error=RuleFileError):
        rule_file = parse_rule_file(path.read_bytes(), path=path)
        loaded += [LoadedRule(rule_file.funnel, rule, path) for rule in rule_file.rules]
    duplicates = [rid for rid, n in Counter(r.rule.id for r in loaded).items() if n > 1]
    if duplicates:
        where = {r.source for r in loaded if r.rule.id in duplicates}
        problems = [f"rule id {rid!r} is used more than once" for rid in duplicates]
        raise RuleFileError(sorted(where)[0], problems)
    return loaded
