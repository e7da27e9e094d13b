"""Follow-up rules can require the source of the event behind a stage change.

``source: {kind: server}`` on an ``entered`` rule: only changes whose causing
event came from a server write key (``causeSourceKind``) ask for the follow-up.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from funnel_notifier.domain.rules import LoadedRule, RuleFileError, parse_rule_file
from funnel_notifier.domain.triggers import Decoded, decode, plan_followups

from tests.support.notifier_support import stage_change

RULES = """
funnel: lifecycle
rules:
  - id: crm-customer
    trigger: entered
    stage: customer
    source: {kind: server}
    action: {type: kafka, topic: tasks, task: crm.call}
  - id: welcome
    trigger: entered
    stage: customer
    action: {type: kafka, topic: tasks, task: welcome}
"""


def _loaded() -> list[LoadedRule]:
    path = Path("rules/lifecycle.yaml")
    rules = parse_rule_file(RULES, path=path)
    return [LoadedRule(rules.funnel, rule, path) for rule in rules.rules]


def _planned(**cause: object) -> list[str]:
    change = stage_change("c-1", to_stage="customer").model_copy(update=cause)
    decoded = decode(change.model_dump_json(by_alias=True).encode())
    assert isinstance(decoded, Decoded)
    return [planned.rule.rule.id for planned in plan_followups(decoded.trigger, _loaded())]


def test_a_change_caused_by_a_server_event_asks_for_the_follow_up() -> None:
    assert _planned(cause_source="shop", cause_source_kind="server") == [
        "crm-customer",
        "welcome",
    ]


@pytest.mark.parametrize(
    "cause",
    [
        {"cause_source": "web", "cause_source_kind": "browser"},
        {},  # A record from before causeSourceKind.
        {"cause_kind": "merge"},
    ],
)
def test_other_changes_do_not(cause: dict[str, object]) -> None:
    assert _planned(**cause) == ["welcome"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "trigger: stalled\n    stage: lead\n    source: {kind: server}",
            "source: only an entered trigger has a causing event; not stalled",
        ),
        ("trigger: entered\n    stage: lead\n    source: {kind: admin}", "rules[0].source.kind"),
        ("trigger: entered\n    stage: lead\n    source: {}", "give name, kind or both"),
    ],
)
def test_a_bad_source_condition_is_refused_naming_the_file_and_field(
    extra: str, expected: str
) -> None:
    text = f"""
funnel: lifecycle
rules:
  - id: r
    {extra}
    action: {{type: kafka, topic: tasks, task: t}}
"""
    with pytest.raises(RuleFileError) as refused:
        parse_rule_file(text, path=Path("rules/x.yaml"))
    assert "x.yaml" in str(refused.value) and expected in str(refused.value)
