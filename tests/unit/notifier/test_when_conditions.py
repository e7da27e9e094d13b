"""Follow-up rules for a segment: ``when`` on the contact's traits and the triggering record.

The operators are the funnel rules' own (``funnel_shared.conditions``), so each is
checked here on traits and on the stage change's fields, with missing values, and
with the load errors naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from funnel_notifier.domain.rules import LoadedRule, RuleFileError, parse_rule_file
from funnel_notifier.domain.triggers import Decoded, decode, plan_followups
from funnel_shared.events import Explanation, SumExplanation
from pydantic import BaseModel

from tests.support.notifier_support import contact_merged, stage_change, stage_stalled

ACTION = "{type: kafka, topic: tasks, task: go}"


def _rules(*whens: str, trigger: str = "entered", stage: str | None = "lead") -> list[LoadedRule]:
    stage_line = f"    stage: {stage}\n" if stage else ""
    body = "".join(
        f"  - id: r{index}\n    trigger: {trigger}\n{stage_line}    when: {when}\n"
        f"    action: {ACTION}\n"
        for index, when in enumerate(whens)
    )
    path = Path("rules/lifecycle.yaml")
    parsed = parse_rule_file(f"funnel: lifecycle\nrules:\n{body}", path=path)
    return [LoadedRule(parsed.funnel, rule, path) for rule in parsed.rules]


def _fires(when: str, record: BaseModel, **kwargs: Any) -> bool:
    decoded = decode(record.model_dump_json(by_alias=True).encode())
    assert isinstance(decoded, Decoded)
    return bool(plan_followups(decoded.trigger, _rules(when, **kwargs)))


TRAITS = {
    "industry": "saas",
    "plan": "pro",
    "seats": 40,
    "email": "ann@shop.example",
    "tags": ["beta", "vip"],
    "company": {"size": "large"},
    "trial": True,
    "gone": None,
}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("{industry: saas}", True),
        ("{industry: retail}", False),
        ("{industry: {equals: saas}}", True),
        ("{industry: {in: [retail, saas]}}", True),
        ("{industry: {in: [retail, ecommerce]}}", False),
        ("{plan: {exists: true}}", True),
        ("{gone: {exists: true}}", False),
        ("{gone: {exists: false}}", True),
        ("{nothing: {exists: false}}", True),
        ("{seats: {gt: 39}}", True),
        ("{seats: {gt: 40}}", False),
        ("{seats: {gte: 40}}", True),
        ("{seats: {lt: 40}}", False),
        ("{seats: {lte: 40}}", True),
        ("{plan: {gt: 1}}", False),  # Text is not a number.
        ("{email: {prefix: ann@}}", True),
        ("{email: {prefix: bob@}}", False),
        ("{email: {contains: '@shop.'}}", True),
        ("{tags: {contains: vip}}", True),
        ("{tags: {contains: gold}}", False),
        ("{company.size: large}", True),
        ("{trial: 1}", False),  # JSON true is not 1.
        ("{trial: true}", True),
        ("{industry: saas, plan: free}", False),  # Every condition must hold.
    ],
)
def test_each_operator_on_traits(condition: str, expected: bool) -> None:
    change = stage_change("c-1", to_stage="lead", traits=TRAITS)
    assert _fires(f"{{traits: {condition}}}", change) is expected


@pytest.mark.parametrize(
    "condition",
    ["{industry: saas}", "{industry: {in: [saas]}}", "{seats: {gt: 0}}", "{email: {prefix: a}}"],
)
def test_a_missing_trait_satisfies_no_condition_but_exists_false(condition: str) -> None:
    change = stage_change("c-1", to_stage="lead", traits={})
    assert not _fires(f"{{traits: {condition}}}", change)
    assert _fires("{traits: {industry: {exists: false}}}", change)


EXPLAINED = Explanation(
    sum=SumExplanation(property="revenue", total=1200.0, at_least=1000.0, within_seconds=None)
)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("{fromStage: visitor}", True),
        ("{fromStage: {in: [prospect]}}", False),
        ("{toStage: lead}", True),
        ("{ruleId: {prefix: test.}}", True),
        ("{causeKind: event}", True),
        ("{causeKind: merge}", False),
        ("{causeSource: {exists: true}}", False),  # None on the record.
        ("{explanation.sum.total: {gte: 1200}}", True),
        ("{explanation.sum.total: {gt: 1200}}", False),
        ("{explanation.sum.property: {contains: rev}}", True),
        ("{funnelVersion: test}", True),
    ],
)
def test_each_operator_on_the_stage_change(condition: str, expected: bool) -> None:
    change = stage_change("c-1", to_stage="lead", from_stage="visitor").model_copy(
        update={"explanation": EXPLAINED}
    )
    assert _fires(f"{{change: {condition}}}", change) is expected


def test_a_change_from_before_explanations_satisfies_only_a_missing_total() -> None:
    old = stage_change("c-1", to_stage="lead")
    assert not _fires("{change: {explanation.sum.total: {gte: 0}}}", old)
    assert _fires("{change: {explanation: {exists: false}}}", old)


def test_one_stage_sends_different_follow_ups_to_different_segments() -> None:
    rules = _rules(
        "{traits: {industry: saas}}",
        "{traits: {industry: {in: [retail, ecommerce]}}}",
        "{traits: {seats: {gte: 50}}, change: {fromStage: {exists: true}}}",
    )

    def planned(traits: dict[str, Any], from_stage: str | None = "visitor") -> list[str]:
        change = stage_change("c-1", to_stage="lead", from_stage=from_stage, traits=traits)
        decoded = decode(change.model_dump_json(by_alias=True).encode())
        assert isinstance(decoded, Decoded)
        return [p.rule.rule.id for p in plan_followups(decoded.trigger, rules)]

    assert planned({"industry": "saas"}) == ["r0"]
    assert planned({"industry": "ecommerce", "seats": 80}) == ["r1", "r2"]
    assert planned({"industry": "ecommerce", "seats": 80}, from_stage=None) == ["r1"]
    assert planned({"industry": "bank", "seats": 3}) == []


def test_when_on_stall_and_merge_triggers_tests_their_own_records() -> None:
    stall = stage_stalled("c-1", stage="prospect", traits={"plan": "pro"}, move_to="lead")
    assert _fires(
        "{traits: {plan: pro}, change: {moveTo: lead}}", stall, trigger="stalled", stage="prospect"
    )
    assert not _fires("{change: {moveTo: dormant}}", stall, trigger="stalled", stage="prospect")
    merged = contact_merged("user-1", "anon-1", traits={"plan": "pro"})
    assert _fires(
        "{change: {mergedContactId: {prefix: anon-}}}", merged, trigger="merged", stage=None
    )
    assert not _fires("{traits: {plan: free}}", merged, trigger="merged", stage=None)


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("{}", "rules[0].when: give traits, change or both"),
        ("{traits: {seats: {gt: many}}}", "rules[0].when.traits.seats.gt: Input should be a valid"),
        (
            "{traits: {plan: {equals: pro, in: [pro]}}}",
            "rules[0].when.traits.plan: a condition takes exactly one operator",
        ),
        ("{traits: {plan: {like: pro}}}", "rules[0].when.traits.plan.like: Extra inputs"),
        ("{change: {fromStage: {exists: maybe}}}", "rules[0].when.change.fromStage.exists:"),
        ("{segment: {plan: pro}}", "rules[0].when.segment: Extra inputs"),
        ("{traits: [plan]}", "rules[0].when.traits: Input should be a valid dictionary"),
    ],
)
def test_a_bad_when_names_the_file_and_the_field(when: str, message: str) -> None:
    with pytest.raises(RuleFileError) as caught:
        _rules(when)
    assert str(caught.value).startswith("rules/lifecycle.yaml: ")
    assert message in str(caught.value)
