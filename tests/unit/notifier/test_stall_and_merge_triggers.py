"""Stall and merge records: decoded into triggers, planned, and shown to receivers."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from funnel_notifier.channels import Delivery
from funnel_notifier.channels.mail import EmailChannel, Renderer, SmtpConfig
from funnel_notifier.channels.webhook import webhook_body
from funnel_notifier.domain.rules import LoadedRule, builtin_rules_dir, load_rules, parse_rule_file
from funnel_notifier.domain.triggers import Decoded, Invalid, Trigger, decode, plan_followups
from funnel_shared.events import ContactMerged, StageStalled

from tests.support.notifier_support import contact_merged, stage_change, stage_stalled

RULES = load_rules(builtin_rules_dir())

MORE_RULES = """
funnel: lifecycle
rules:
  - id: lead.stalled
    trigger: stalled
    stage: lead
    after: 1h
    action: {type: kafka, topic: tasks, task: crm.call}
  - id: merged.crm
    trigger: merged
    action: {type: kafka, topic: tasks, task: crm.merge}
  - id: other.merged
    trigger: merged
    action: {type: kafka, topic: tasks, task: crm.merge}
"""


def _rules(text: str = MORE_RULES) -> list[LoadedRule]:
    path = Path("more.yaml")
    parsed = parse_rule_file(text, path=path)
    return RULES + [LoadedRule(parsed.funnel, rule, path) for rule in parsed.rules]


def _trigger(value: bytes) -> Trigger:
    decoded = decode(value)
    assert isinstance(decoded, Decoded), decoded
    return decoded.trigger


def test_a_stall_becomes_a_stalled_trigger_in_the_stage_it_stalled_in() -> None:
    stall = stage_stalled("c1", stage="prospect", traits={"email": "p@x.example"})
    trigger = _trigger(stall.model_dump_json().encode())
    assert (trigger.type, trigger.source_id, trigger.funnel, trigger.contact_id) == (
        "stalled",
        stall.id,
        "lifecycle",
        "c1",
    )
    assert (trigger.stage, trigger.event_time) == ("prospect", stall.event_time)
    assert trigger.traits == {"email": "p@x.example"}
    assert trigger.record == stall.model_dump(mode="json")
    assert trigger.record["kind"] == "stage_stalled"
    # Only stage changes move the latest stage; a stall's move comes as its own change.
    assert trigger.change is None


def test_a_stall_plans_only_the_stalled_rules_of_its_stage() -> None:
    in_prospect = _trigger(stage_stalled("c1", stage="prospect").model_dump_json().encode())
    in_lead = _trigger(stage_stalled("c1", stage="lead").model_dump_json().encode())
    elsewhere = _trigger(
        stage_stalled("c1", funnel="hourglass", stage="prospect").model_dump_json().encode()
    )
    rules = _rules()
    assert [p.rule.rule.id for p in plan_followups(in_prospect, rules)] == [
        "lifecycle.prospect.stalled"
    ]
    [planned] = plan_followups(in_lead, rules)
    assert planned.rule.rule.id == "lead.stalled"
    assert planned.due_at == in_lead.event_time + timedelta(hours=1)
    assert plan_followups(elsewhere, rules) == []


def test_entering_a_stage_does_not_match_a_stalled_rule_for_it() -> None:
    entered = _trigger(stage_change("c1", to_stage="prospect").model_dump_json().encode())
    assert plan_followups(entered, _rules()) == []


def test_a_merge_becomes_a_merged_trigger_for_the_surviving_contact_in_the_whole_funnel() -> None:
    merged = contact_merged("user-1", "anon-1", current_stage="customer", traits={"plan": "pro"})
    trigger = _trigger(merged.model_dump_json().encode())
    assert (trigger.type, trigger.source_id, trigger.contact_id) == ("merged", merged.id, "user-1")
    assert (trigger.funnel, trigger.stage, trigger.event_time) == (
        "lifecycle",
        None,
        merged.event_time,
    )
    assert trigger.traits == {"plan": "pro"}
    assert trigger.record["mergedContactId"] == "anon-1"
    assert trigger.record["currentStage"] == "customer"
    assert trigger.change is None


def test_a_merge_plans_every_merged_rule_of_its_funnel_whatever_the_stage() -> None:
    for stage in ("lead", "customer"):
        trigger = _trigger(contact_merged("u", "a", current_stage=stage).model_dump_json().encode())
        planned = plan_followups(trigger, _rules())
        assert sorted(p.rule.rule.id for p in planned) == ["merged.crm", "other.merged"]
        assert {p.due_at for p in planned} == {trigger.event_time}
    hourglass = contact_merged("u", "a", funnel="hourglass", current_stage="closed")
    assert plan_followups(_trigger(hourglass.model_dump_json().encode()), _rules()) == []


def test_follow_up_ids_of_a_stall_or_merge_are_deterministic_per_record_and_rule() -> None:
    for record in (stage_stalled("c1", stage="lead"), contact_merged("u", "a")):
        value = record.model_dump_json().encode()
        first = [p.id for p in plan_followups(_trigger(value), _rules())]
        again = [p.id for p in plan_followups(_trigger(value), _rules())]
        assert first and first == again


@pytest.mark.parametrize(
    ("record", "missing"),
    [
        (stage_stalled("c1"), "stage"),
        (stage_stalled("c1"), "eventTime"),
        (contact_merged("u", "a"), "contactId"),
        (contact_merged("u", "a"), "currentStage"),
    ],
)
def test_a_stall_or_merge_missing_a_field_is_invalid_naming_the_field(
    record: StageStalled | ContactMerged, missing: str
) -> None:
    data = json.loads(record.model_dump_json())
    del data[missing]
    decoded = decode(json.dumps(data).encode())
    assert isinstance(decoded, Invalid)
    assert any(error.startswith(f"{missing}:") for error in decoded.errors), decoded.errors


def test_a_stall_with_a_naive_deadline_is_invalid() -> None:
    data = json.loads(stage_stalled("c1").model_dump_json())
    data["eventTime"] = "2026-11-23T12:00:00"
    decoded = decode(json.dumps(data).encode())
    assert isinstance(decoded, Invalid)
    assert any(error.startswith("eventTime:") for error in decoded.errors)


def _delivery(trigger: Trigger, rule_id: str) -> Delivery:
    return Delivery(
        followup_id="f-1",
        rule_id=rule_id,
        trigger=trigger.type,
        funnel=trigger.funnel,
        contact_id=trigger.contact_id,
        stage=trigger.stage,
        stage_change_id=trigger.source_id,
        record=trigger.record,
    )


def test_a_webhook_body_carries_the_stall_or_the_merge_with_the_rule() -> None:
    stall = stage_stalled("c1", stage="prospect", traits={"email": "p@x.example"})
    body = json.loads(webhook_body(_delivery(_trigger(stall.model_dump_json().encode()), "s")))
    assert body["type"] == "followup.stalled"
    assert body["data"]["rule"] == {
        "id": "s",
        "trigger": "stalled",
        "funnel": "lifecycle",
        "stage": "prospect",
    }
    assert body["data"]["stall"] == stall.model_dump(mode="json")
    assert body["timestamp"] == stall.model_dump(mode="json")["eventTime"]

    merged = contact_merged("u", "a", current_stage="lead", traits={"email": "u@x.example"})
    body = json.loads(webhook_body(_delivery(_trigger(merged.model_dump_json().encode()), "m")))
    assert body["type"] == "followup.merged"
    assert body["data"]["rule"] == {
        "id": "m",
        "trigger": "merged",
        "funnel": "lifecycle",
        "stage": None,
    }
    assert body["data"]["merge"] == merged.model_dump(mode="json")
    assert "stageChange" not in body["data"] and "stall" not in body["data"]


def test_an_email_template_can_use_the_traits_and_fields_of_a_stall(tmp_path: Path) -> None:
    (tmp_path / "t.subject.j2").write_text(
        "{{ trigger }} in {{ stage }} since {{ record.enteredAt }}"
    )
    (tmp_path / "t.txt.j2").write_text("Hi {{ traits.name }}, moving to {{ record.moveTo }}")
    (tmp_path / "t.html.j2").write_text("<p>{{ traits.name }}</p>")
    smtp = SmtpConfig(
        host="unused",
        port=1,
        username=None,
        password=None,
        starttls=False,
        message_id_domain="mail.example",
    )
    channel = EmailChannel(
        renderer=Renderer(tmp_path),
        smtp=smtp,
        template="t",
        to="{{ traits.email }}",
        sender="a@b.c",
    )
    stall = stage_stalled(
        "c1", stage="trial", traits={"email": "z@x.example", "name": "Zoë"}, move_to="dormant"
    )
    message = channel.build(_delivery(_trigger(stall.model_dump_json().encode()), "s"))
    assert message["To"] == "z@x.example"
    entered_at = stall.model_dump(mode="json")["enteredAt"]
    assert message["Subject"] == f"stalled in trial since {entered_at}"
    assert message.get_body(("plain",)).get_content().strip() == "Hi Zoë, moving to dormant"
