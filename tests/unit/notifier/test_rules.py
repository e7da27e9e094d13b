"""Follow-up rule files: the shipped examples, and errors that name the file and the field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from funnel_notifier.domain.rules import (
    RuleFileError,
    builtin_rules_dir,
    load_rules,
    parse_rule_file,
)
from funnel_notifier.main import check

from tests.support.notifier_support import new_secret, write_rules

GOOD = """
funnel: lifecycle
rules:
  - id: nudge
    trigger: entered
    stage: lead
    after: 2d
    unless: moved_on
    action: {type: email, template: nudge, to: "{{ traits.email }}", from: "a@b.example"}
"""


def _problems(text: str) -> str:
    with pytest.raises(RuleFileError) as caught:
        parse_rule_file(text, path=Path("rules/x.yaml"))
    return str(caught.value)


def test_the_shipped_examples_cover_the_built_in_funnels() -> None:
    rules = {item.rule.id: item for item in load_rules(builtin_rules_dir())}
    assert set(rules) == {
        "lifecycle.lead.welcome",
        "lifecycle.lead.nudge",
        "lifecycle.prospect.stalled",
        "hourglass.closed.crm",
    }
    nudge = rules["lifecycle.lead.nudge"].rule
    assert (nudge.after, nudge.unless) == (timedelta(days=2), "moved_on")
    assert rules["lifecycle.prospect.stalled"].rule.trigger == "stalled"
    assert rules["hourglass.closed.crm"].rule.action.type == "webhook"


def test_a_good_file_parses_with_its_delay() -> None:
    parsed = parse_rule_file(GOOD, path=Path("x.yaml"))
    assert parsed.rules[0].after == timedelta(days=2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("after: 2d", "after: 2 days"), "rules[0].after: '2 days' is not a duration"),
        (GOOD.replace("trigger: entered", "trigger: left"), "rules[0].trigger: Input should be"),
        (GOOD.replace("    stage: lead\n", ""), "rules[0]: stage: required for a entered"),
        (GOOD.replace("type: email", "type: fax"), "rules[0].action: Input tag 'fax'"),
        (GOOD.replace("template: nudge, ", ""), "rules[0].action.template: Field required"),
        (GOOD.replace("funnel: lifecycle", "funnel: Life Cycle"), "funnel: String should match"),
        ("- just a list", "the file must hold a mapping"),
        ("funnel: [", "line 1, column 10: YAML syntax error"),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_the_field(text: str, expected: str) -> None:
    message = _problems(text)
    assert message.startswith("rules/x.yaml: ")
    assert expected in message


def test_a_merged_trigger_takes_no_stage_and_a_webhook_needs_exactly_one_url() -> None:
    merged = """
funnel: lifecycle
rules:
  - id: m
    trigger: merged
    stage: lead
    action: {type: webhook, url: "https://x.example", secret_env: S}
"""
    assert "a merged trigger applies to the whole funnel" in _problems(merged)
    both = merged.replace("trigger: merged\n    stage: lead", "trigger: stalled\n    stage: lead")
    both = both.replace('url: "https://x.example"', 'url: "https://x.example", url_env: U')
    assert "give exactly one of url and url_env" in _problems(both)


def test_a_signature_header_cannot_be_overridden() -> None:
    text = """
funnel: hourglass
rules:
  - id: h
    trigger: entered
    stage: closed
    action: {type: webhook, url: "https://x.example", secret_env: S,
             headers: {Webhook-Signature: forged}}
"""
    assert "webhook-signature are set by the notifier" in _problems(text)


def test_rule_ids_must_be_unique_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yml").write_text(GOOD)
    with pytest.raises(RuleFileError, match="rule id 'nudge' is used more than once"):
        load_rules(tmp_path)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("2h", 7200), ("2d", 172800), (1.5, 1.5), ("0s", 0)],
)
def test_durations(text: str | float, seconds: float) -> None:
    # A rule's delay is the shared duration grammar; zero (an immediate follow-up) is allowed.
    rule = parse_rule_file(GOOD, path=Path("x.yaml")).rules[0]
    after = type(rule).model_validate({**rule.model_dump(by_alias=True), "after": text}).after
    assert after.total_seconds() == seconds


def test_check_reports_disabled_rules_and_fails_on_a_missing_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CRM_WEBHOOK_URL", "SALES_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    assert check(builtin_rules_dir()) == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        "lifecycle.prospect.stalled: stalled lifecycle/prospect -> webhook: DISABLED: the"
        " environment variable SALES_WEBHOOK_URL (the webhook URL) is not set"
    ) in out
    assert (
        "hourglass.closed.crm: entered hourglass/closed -> webhook: DISABLED: the"
        " environment variable CRM_WEBHOOK_URL (the webhook URL) is not set"
    ) in out

    for prefix in ("CRM", "SALES"):
        monkeypatch.setenv(f"{prefix}_WEBHOOK_URL", f"https://{prefix.lower()}.example/hook")
        monkeypatch.setenv(f"{prefix}_WEBHOOK_SECRET", new_secret())
    assert check(builtin_rules_dir()) == 0
    out = capsys.readouterr().out.splitlines()
    # A stall rule is an ordinary rule now: nothing says it waits for anything.
    assert "lifecycle.prospect.stalled: stalled lifecycle/prospect -> webhook: ok" in out
    assert "hourglass.closed.crm: entered hourglass/closed -> webhook: ok" in out
    assert "4 rule(s) in " in out[-1] and out[-1].endswith(", 0 disabled")

    write_rules(tmp_path, GOOD.replace("template: nudge", "template: missing"))
    assert check(tmp_path) == 1
    err = capsys.readouterr().err
    assert "rules.yaml: rule nudge: template missing.subject.j2 not found" in err
