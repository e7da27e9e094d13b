"""Each example of ``examples/`` through the three services as real processes: its journey
goes in over HTTP, and the stage changes on Kafka, the follow-ups, the mails at a real SMTP
server and the funnel report come out as its README says.

One system per example (its funnels and rules are start-up settings), on fresh topics and
a fresh database, so the report counts exactly the journey's contacts.

The notifier starts once every stage change of the journey is on Kafka: the journey is in
the past, so its follow-ups are due as soon as they are stored, and a notifier running
alongside the stage engine could send a step (``unless: moved_on``) before the stage
change that cancels it reached it. Started after, it stores that backlog before its
dispatcher starts (docs/notifier.md), so the outcomes are exact.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from funnel_devstack.journeys import contact_id, journey_batch, load_example
from funnel_devstack.mailsink import MailSink
from funnel_devstack.processes import free_port
from funnel_shared.kafka import ensure_topics
from funnel_shared.settings import KafkaSettings

from tests.conftest import create_topics, migrated_copy, topic_environment
from tests.e2e.conftest import WRITE_KEY, RunningSystem, _log_tail, run_system
from tests.support.access import AUTH_HEADERS
from tests.support.kafka_reader import TopicReader

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TASK_TOPIC = "crm.tasks.v1"  # the examples' kafka follow-ups

# Per example: each contact's (funnel -> rule ids of its stage changes, in order), each
# follow-up rule's final status per contact, the mails (recipient, subject start) and
# the funnel report's "reached" per stage.
EXPECTED: dict[str, dict[str, Any]] = {
    "value-ladder": {
        "changes": {
            "ada": {
                "value-ladder": ["visited", "subscribed", "first-order", "lifetime-spend"],
                "webinar": ["registered", "attended", "saw-offer", "bought-program"],
                "book": ["viewed-book", "bought-book"],
            },
            "ben": {
                "value-ladder": ["visited", "first-order", "second-order"],
                "free-plus-shipping": ["saw-offer", "claimed-kit", "took-bump"],
                "product-launch": ["opted-in", "watched-three-videos", "opened-cart"],
            },
            "cleo": {
                "value-ladder": ["visited", "subscribed"],
                "webinar": ["registered", "attended"],
                "product-launch": ["opted-in"],
            },
            "dan": {"value-ladder": ["visited"], "book": ["viewed-book"]},
        },
        "followups": {
            ("ada", "value-ladder.subscriber.welcome"): "sent",
            ("ada", "webinar.registered.seat"): "sent",
            ("ada", "webinar.attended.offer"): "cancelled",
            ("ada", "value-ladder.lifetime.thank-you"): "sent",
            ("cleo", "value-ladder.subscriber.welcome"): "sent",
            ("cleo", "webinar.registered.seat"): "sent",
            ("cleo", "webinar.attended.offer"): "sent",
        },
        "mails": {"ada": 2, "cleo": 3},
        "tasks": {"ada": ["write-thank-you-note"]},
        "report": ("value-ladder", [4, 3, 2, 2, 1]),
    },
    "awareness-to-advocacy": {
        "furthest": {
            "amy": "ambassador",
            "bo": "customer",
            "cy": "prospect",
            "di": "lead",
            "ed": "desire",
            "fi": "interest",
            "gil": "awareness",
        },
        "followups": {
            **{(c, "advocacy.lead.call-back"): "sent" for c in ("amy", "bo", "cy", "di")},
            ("amy", "advocacy.customer.referral-link"): "sent",
            ("amy", "advocacy.ambassador.thanks"): "sent",
            ("bo", "advocacy.customer.referral-link"): "scheduled",
        },
        "mails": {"amy": 2},
        "tasks": {c: ["call-back-new-lead"] for c in ("amy", "bo", "cy", "di")},
        "report": ("awareness-to-advocacy", [7, 6, 5, 4, 3, 2, 1]),
    },
    "free-offer": {
        "changes": {
            "fay": {"free-offer": ["visited", "claimed-guide"]},
            "gus": {"free-offer": ["visited", "claimed-guide", "first-sale"]},
            "hal": {
                "free-offer": [
                    "visited",
                    "claimed-guide",
                    "first-sale",
                    "took-upsell",
                    "bought-again",
                ]
            },
        },
        "followups": {
            **{
                ("fay", f"free-offer.subscriber.{step}"): "sent"
                for step in ("guide", "day-1", "day-3", "day-7")
            },
            ("gus", "free-offer.subscriber.guide"): "sent",
            **{
                ("gus", f"free-offer.subscriber.{step}"): "cancelled"
                for step in ("day-1", "day-3", "day-7")
            },
            ("gus", "free-offer.customer.upsell"): "sent",
            ("gus", "free-offer.customer.check-in-call"): "scheduled",
            ("hal", "free-offer.subscriber.guide"): "sent",
            **{
                ("hal", f"free-offer.subscriber.{step}"): "cancelled"
                for step in ("day-1", "day-3", "day-7")
            },
            ("hal", "free-offer.customer.upsell"): "sent",
            ("hal", "free-offer.customer.check-in-call"): "sent",
            ("hal", "free-offer.repeat-buyer.loyalty"): "sent",
        },
        "mails": {"fay": 4, "gus": 2, "hal": 3},
        "tasks": {"hal": ["check-in-call"]},
        "report": ("free-offer", [3, 3, 2, 1, 1]),
    },
    "aida-segments": {
        "changes": {
            "ivy": {
                "buyer-journey": ["may-buy", "interested-in-till"],
                "attention-to-action": ["attention", "interest"],
            },
            "jon": {
                "buyer-journey": ["may-buy", "interested-in-scheduler"],
                "attention-to-action": ["attention", "interest"],
            },
            "kim": {
                "buyer-journey": [
                    "may-buy",
                    "interested-in-scheduler",
                    "first-order",
                    "second-order",
                ],
                "attention-to-action": ["attention", "interest", "desire", "action"],
            },
            "lea": {"buyer-journey": ["may-buy"], "attention-to-action": ["attention"]},
        },
        # Exactly these: a segment's rule fires for nobody outside it.
        "followups": {
            ("ivy", "buyer.lead.retail"): "sent",
            ("ivy", "buyer.lead.till-guide"): "sent",
            ("jon", "buyer.lead.healthcare"): "sent",
            ("jon", "buyer.lead.scheduler-guide"): "sent",
            ("kim", "buyer.lead.retail"): "sent",
            ("kim", "buyer.lead.scheduler-guide"): "sent",
            ("kim", "buyer.customer.pro-kick-off"): "sent",
        },
        "mails": {"ivy": 2, "jon": 2, "kim": 2},
        "tasks": {"kim": ["pro-kick-off-call"]},
        "report": ("buyer-journey", [4, 3, 1, 1]),
    },
    "hourglass-sales": {
        "furthest": {"mia": "referral", "noah": "follow_up", "olga": "delivery"},
        "followups": {
            ("mia", "hourglass.appointment.prepare"): "sent",
            ("mia", "hourglass.follow-up.chase"): "cancelled",
            ("mia", "hourglass.closed.cement"): "sent",
            ("mia", "hourglass.delivery.service-check-in"): "cancelled",
            ("mia", "hourglass.service.surprise"): "cancelled",
            ("mia", "hourglass.renewal.ask-for-referrals"): "sent",
            ("noah", "hourglass.appointment.prepare"): "sent",
            ("noah", "hourglass.follow-up.chase"): "sent",
            ("olga", "hourglass.appointment.prepare"): "sent",
            ("olga", "hourglass.follow-up.chase"): "cancelled",
            ("olga", "hourglass.closed.cement"): "sent",
            ("olga", "hourglass.delivery.service-check-in"): "sent",
        },
        "sales_mails": 7,  # to the sales team: every "sent" e-mail above
        "tasks": {"olga": ["service-check-in"]},
        "blocked": {"noah": 1},
        "report": ("hourglass-sales", [3, 3, 3, 3, 3, 2, 2, 2, 1, 1, 1, 1]),
    },
}

FINAL = {"sent", "cancelled", "dead"}


@pytest.fixture(scope="module")
async def task_topic(kafka_settings: KafkaSettings) -> str:
    await ensure_topics(kafka_settings, [TASK_TOPIC])
    return TASK_TOPIC


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_an_example_journey_moves_its_contacts_and_sends_its_follow_ups(
    name: str,
    kafka_env: dict[str, str],
    kafka_settings: KafkaSettings,
    postgres_admin_dsn: str,
    task_topic: str,
    tmp_path: Path,
) -> None:
    expected = EXPECTED[name]
    example = load_example(EXAMPLES / name)
    topics = topic_environment(await create_topics(kafka_settings))
    database = await migrated_copy(postgres_admin_dsn, "funnel-notifier", "funnel-stage-engine")
    run = uuid.uuid4().hex[:6]
    contacts = {contact_id(c, run): c for c in example.journey.contacts}
    with MailSink(directory=tmp_path / "mail", port=free_port()) as sink:
        systems = run_system(
            kafka_env,
            topics,
            database,
            tmp_path,
            STAGE_ENGINE_FUNNELS_DIR=str(example.funnels),
            NOTIFIER_RULES_DIR=str(example.rules),
            NOTIFIER_SMTP_HOST=sink.host,
            NOTIFIER_SMTP_PORT=str(sink.port),
            deferred=("notifier",),
        )
        system = next(systems)
        try:
            batch = journey_batch(example.journey, run=run, now=datetime.now(UTC))
            async with httpx.AsyncClient() as client:
                answer = await client.post(
                    system.urls["ingest"] + "/v1/batch",
                    json={"batch": batch},
                    auth=(WRITE_KEY, ""),
                )
            assert answer.status_code == 200, answer.text
            assert answer.json()["accepted"] == len(batch)
            await asyncio.to_thread(_all_published, system, contacts, expected)
            await asyncio.to_thread(system.start_deferred)
            followups = await _settled_followups(system, contacts, expected["followups"])
            await _check(system, expected, contacts, followups, sink, task_topic)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_log_tail(system.logs)}") from exc
        finally:
            next(systems, None)  # Runs run_system's clean-up: the processes stop.


async def _settled_followups(
    system: RunningSystem, contacts: dict[str, str], wanted: dict[tuple[str, str], str]
) -> dict[tuple[str, str], str]:
    """Every follow-up of the journey's contacts, once as many as expected exist and each
    expected one has its final status (or is scheduled, when that is what is expected)."""
    deadline = asyncio.get_running_loop().time() + 120
    found: dict[tuple[str, str], str] = {}
    async with httpx.AsyncClient(base_url=system.urls["notifier"], headers=AUTH_HEADERS) as client:
        while asyncio.get_running_loop().time() < deadline:
            found = {}
            for contact, short in contacts.items():
                response = await client.get(
                    "/v1/followups", params={"contact": contact, "limit": 100}
                )
                assert response.status_code == 200, response.text
                for item in response.json()["items"]:
                    found[(short, item["ruleId"])] = item["status"]
            done = set(found) >= set(wanted) and all(
                found[key] in FINAL or found[key] == wanted[key] == "scheduled" for key in wanted
            )
            if done:
                return found
            await asyncio.sleep(0.5)
    return found


async def _check(
    system: RunningSystem,
    expected: dict[str, Any],
    contacts: dict[str, str],
    followups: dict[tuple[str, str], str],
    sink: MailSink,
    task_topic: str,
) -> None:
    # The follow-ups: exactly the expected ones, with their statuses (a segment's rule
    # fired for nobody else; a sequence step after a purchase was cancelled).
    assert followups == expected["followups"]

    # The stage changes on Kafka, per contact and funnel, in order, by rule id.
    changes = await asyncio.to_thread(_stage_changes, system, set(contacts), len(contacts))
    by_contact: dict[str, dict[str, list[str]]] = {}
    furthest: dict[str, dict[str, str]] = {}
    blocked: Counter[str] = Counter()
    for record in changes:
        short = contacts[record["contactId"]]
        if record["kind"] == "stage_changed":
            by_contact.setdefault(short, {}).setdefault(record["funnel"], []).append(
                record["ruleId"]
            )
            furthest.setdefault(short, {})[record["funnel"]] = record["furthestStage"]
        elif record["kind"] == "stage_blocked":
            blocked[short] += 1
    if "changes" in expected:
        assert by_contact == expected["changes"]
    report_funnel, reached = expected["report"]
    if "furthest" in expected:
        assert {c: f[report_funnel] for c, f in furthest.items()} == expected["furthest"]
    assert dict(blocked) == expected.get("blocked", {})

    # The mails at the SMTP server.
    mails = sink.messages()
    if "sales_mails" in expected:
        assert [m["To"] for m in mails] == ["sales@acme-consulting.example"] * expected[
            "sales_mails"
        ]
    else:
        to = Counter(str(m["To"]).split("@")[0] for m in mails)
        assert dict(to) == expected["mails"]

    # The Kafka tasks for people.
    tasks = await asyncio.to_thread(_tasks, system, set(contacts), expected["tasks"], contacts)
    assert tasks == expected["tasks"]

    # The funnel report counts the journey's contacts.
    async with httpx.AsyncClient(headers=AUTH_HEADERS) as client:
        response = await client.get(
            f"{system.urls['stage-engine']}/v1/funnels/{report_funnel}/report"
        )
    assert response.status_code == 200, response.text
    assert [stage["reached"] for stage in response.json()["stages"]] == reached


def _all_published(
    system: RunningSystem, contacts: dict[str, str], expected: dict[str, Any]
) -> None:
    """Wait until the stage-changed topic holds the journey's every stage change: as many
    per contact and funnel as expected, or (where only the furthest stage is expected)
    each contact at its furthest stage, and the blocked skips."""
    changes: dict[str, dict[str, int]] = {
        c: {funnel: len(rules) for funnel, rules in by_funnel.items()}
        for c, by_funnel in expected.get("changes", {}).items()
    }
    report_funnel = expected["report"][0]
    reader = TopicReader(system.bootstrap_servers, system.topics["TOPIC_STAGE_CHANGED"])

    def complete(records: list[Any]) -> bool:
        counted: dict[str, dict[str, int]] = {}
        furthest: dict[str, str] = {}
        blocked: Counter[str] = Counter()
        for record in records:
            value = json.loads(record.value)
            short = contacts.get(value.get("contactId"))
            if short is None:
                continue
            if value["kind"] == "stage_changed":
                by_funnel = counted.setdefault(short, {})
                by_funnel[value["funnel"]] = by_funnel.get(value["funnel"], 0) + 1
                if value["funnel"] == report_funnel:
                    furthest[short] = value["furthestStage"]
            elif value["kind"] == "stage_blocked":
                blocked[short] += 1
        return (
            ("changes" not in expected or counted == changes)
            and ("furthest" not in expected or furthest == expected["furthest"])
            and dict(blocked) == expected.get("blocked", {})
        )

    try:
        assert reader.read_until(complete, timeout_s=120), "the journey's stage changes"
    finally:
        reader.close()


def _stage_changes(system: RunningSystem, ids: set[str], expected: int) -> list[dict[str, Any]]:
    reader = TopicReader(system.bootstrap_servers, system.topics["TOPIC_STAGE_CHANGED"])
    try:
        reader.read_until(lambda records: len(records) > 0, timeout_s=60)
        reader.read_to_end(timeout_s=60)
    finally:
        reader.close()
    values = [json.loads(record.value) for record in reader.records]
    return [value for value in values if value.get("contactId") in ids]


def _tasks(
    system: RunningSystem,
    ids: set[str],
    wanted: dict[str, list[str]],
    contacts: dict[str, str],
) -> dict[str, list[str]]:
    count = sum(len(tasks) for tasks in wanted.values())
    reader = TopicReader(system.bootstrap_servers, TASK_TOPIC)

    def mine(records: list[Any]) -> list[dict[str, Any]]:
        values = [json.loads(record.value) for record in records]
        return [value for value in values if value.get("contactId") in ids]

    try:
        reader.read_until(lambda records: len(mine(records)) >= count, timeout_s=60)
        reader.read_to_end(timeout_s=30)
    finally:
        reader.close()
    found: dict[str, list[str]] = {}
    for task in mine(reader.records):
        found.setdefault(contacts[task["contactId"]], []).append(task["task"])
    return found


def test_funnel_dev_demo_plays_an_example_and_prints_what_happened(tmp_path: Path) -> None:
    ports = {
        name: free_port()
        for name in ("BROKER", "POSTGRES", "INGEST", "STAGE_ENGINE", "NOTIFIER", "SMTP")
    }
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("KAFKA_", "TOPIC_", "INGEST_", "STAGE_ENGINE_", "NOTIFIER_"))
        and name != "DATABASE_URL"
    }
    env.update({f"FUNNEL_DEV_{name}_PORT": str(port) for name, port in ports.items()})
    env["FUNNEL_DEV_DATA_DIR"] = str(tmp_path / "dev")
    env["FUNNEL_DEV_EXAMPLES_DIR"] = str(EXAMPLES)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "funnel-dev"), "demo", "hourglass-sales", "--once"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, f"{out[-4000:]}\n{done.stderr[-2000:]}"
    summary = out[out.index("hourglass-sales: sent 29 events for 3 contacts") :]
    noah = next(line for line in summary.splitlines() if line.startswith("noah-"))
    run = noah.split(":")[0].removeprefix("noah-")
    assert f"mia-{run}: every step in order" in summary
    twelve = " -> ".join(
        f"{stage} ({rule})"
        for stage, rule in [
            ("opportunity", "opportunity"),
            ("discovery", "discovery"),
            ("appointment", "appointment"),
            ("presentation", "presentation"),
            ("follow_up", "follow-up"),
            ("closed", "closed"),
            ("cementing", "cementing"),
            ("delivery", "delivery"),
            ("service", "service"),
            ("surprise", "surprise"),
            ("renewal", "renewal"),
            ("referral", "referral"),
        ]
    )
    assert f"  hourglass-sales: {twelve}\n" in summary
    assert "  follow-up hourglass.delivery.service-check-in (kafka): sent" in summary
    assert f"funnel page   http://127.0.0.1:{ports['STAGE_ENGINE']}/funnels/hourglass-sales" in out
    # Exactly the seven the e2e test sees: the demo starts the notifier once the stage
    # engine has published every stage change (docs/dev-stack.md, "The examples").
    assert len(list((tmp_path / "dev" / "mail").glob("*.eml"))) == 7
