"""Decoding records by kind, planning follow-ups, and building e-mails: pure code."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from funnel_notifier.channels import Delivery
from funnel_notifier.channels.mail import EmailChannel, Renderer, SmtpConfig
from funnel_notifier.domain.rules import builtin_rules_dir, load_rules
from funnel_notifier.domain.triggers import Decoded, Ignored, Invalid, decode, plan_followups

from tests.support.notifier_support import stage_change

RULES = load_rules(builtin_rules_dir())


def test_a_stage_change_becomes_an_entered_trigger_and_plans_the_lead_rules() -> None:
    change = stage_change("c1", to_stage="lead", traits={"email": "a@b.example"})
    decoded = decode(change.model_dump_json().encode())
    assert isinstance(decoded, Decoded)
    planned = plan_followups(decoded.trigger, RULES)
    assert {p.rule.rule.id: p.due_at - change.event_time for p in planned} == {
        "lifecycle.lead.welcome": timedelta(0),
        "lifecycle.lead.nudge": timedelta(days=2),
    }
    again = plan_followups(decode(change.model_dump_json().encode()).trigger, RULES)  # type: ignore[union-attr]
    assert [p.id for p in again] == [p.id for p in planned]  # Deterministic ids.


def test_a_stage_no_rule_mentions_plans_nothing() -> None:
    decoded = decode(stage_change("c1", to_stage="customer").model_dump_json().encode())
    assert isinstance(decoded, Decoded)
    assert plan_followups(decoded.trigger, RULES) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b'{"kind": "stage_blocked", "id": "x"}', Invalid),
        (b'{"kind": "stage_stalled", "id": "x"}', Invalid),
        (b'{"kind": "contact_merged", "id": "x"}', Invalid),
        (b'{"kind": "from_the_future"}', Ignored),
        (b"[1, 2]", Invalid),
        (b"\xff\xfe", Invalid),
        (b'{"kind": 7}', Invalid),
    ],
)
def test_records_are_sorted_by_kind(value: bytes, expected: type) -> None:
    assert isinstance(decode(value), expected)


def test_unknown_kinds_are_marked_unknown() -> None:
    unknown = decode(b'{"kind": "lead_scored"}')
    assert unknown == Ignored("lead_scored", known=False)


def _channel(template: str, to: str = "{{ traits.email }}") -> EmailChannel:
    smtp = SmtpConfig(
        host="unused",
        port=1,
        username=None,
        password=None,
        starttls=False,
        message_id_domain="mail.example",
    )
    return EmailChannel(
        renderer=Renderer(builtin_rules_dir() / "templates"),
        smtp=smtp,
        template=template,
        to=to,
        sender="Funnel <hello@funnel.example>",
    )


def _delivery(traits: dict[str, str]) -> Delivery:
    return Delivery(
        followup_id="f-1",
        rule_id="welcome",
        trigger="entered",
        funnel="lifecycle",
        contact_id="c1",
        stage="lead",
        stage_change_id="s1",
        record={"traits": traits},
    )


def test_an_email_has_subject_text_and_escaped_html_and_a_stable_message_id() -> None:
    message = _channel("welcome").build(_delivery({"email": "z@x.example", "name": "<Zoë>"}))
    assert message["Message-ID"] == "<f-1@mail.example>"
    assert message["Subject"] == "Welcome, <Zoë>!"
    assert "Hello <Zoë>," in message.get_body(("plain",)).get_content()
    assert "Hello &lt;Zoë&gt;," in message.get_body(("html",)).get_content()


async def test_a_missing_variable_fails_the_follow_up_for_good_with_a_clear_error() -> None:
    outcome = await _channel("welcome").deliver(_delivery({}), timeout_s=1)
    assert (outcome.ok, outcome.final) == (False, True)
    assert outcome.error is not None
    assert "recipient '{{ traits.email }}'" in outcome.error and "email" in outcome.error


def test_a_template_that_uses_an_unknown_variable_names_the_template(tmp_path: Path) -> None:
    for part in ("subject", "txt", "html"):
        (tmp_path / f"t.{part}.j2").write_text("Hi {{ traits.nickname }}")
    channel = EmailChannel(
        renderer=Renderer(tmp_path),
        smtp=_channel("welcome")._smtp,
        template="t",
        to="a@b.example",
        sender="x@y.example",
    )
    with pytest.raises(ValueError, match=r"template t\.subject\.j2: .*nickname"):
        channel.build(_delivery({}))
