"""Property: whatever a client posts, no partition stalls anywhere in the pipeline.

Hypothesis generates requests full of hostile values (every kind of Unicode, huge
and tiny numbers, deep nesting, long strings, odd timestamps and ids, e-mail traits
that are lists or carry CR/LF) and posts them to ingest; each answer must be a
documented one. Then one canary contact per partition signs up, and each canary must
come out of every consumer: the stage engine (its change on the stage-changed
topic), the projection (the read API) and the notifier (its welcome mail on a real
SMTP server). A consumer stuck on a record, or crashed by one, holds back the canary
behind it on that partition. One running system serves the whole test: starting one
costs far more than the checks.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka.admin import AdminClient
from funnel_devstack.mailsink import MailSink
from funnel_devstack.processes import free_port
from funnel_ingest.api_models import BatchAccepted
from funnel_ingest.errors import ErrorBody
from funnel_shared.events import RejectedRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import WRITE_KEY, RunningSystem, _log_tail, run_system
from tests.support.access import AUTH_HEADERS
from tests.support.hostile_values import KNOWN_HOSTILE, requests
from tests.support.kafka_reader import Record, TopicReader, read_all

pytestmark = pytest.mark.e2e

WAIT_S = 90  # For the canaries, once everything is posted; fails with what is missing.
PORT_SETTINGS = {"ingest": "INGEST_PORT", "stage-engine": "STAGE_ENGINE_PORT"}
PORT_SETTINGS["notifier"] = "NOTIFIER_PORT"
SERVICES = {"ingest", "stage-engine", "notifier"}
DEAD_LETTERERS = SERVICES | {"stage-engine-projection"}  # Who may write a dead letter.


@dataclass(frozen=True)
class HostileSystem:
    system: RunningSystem
    mail: MailSink
    pids: dict[str, int]


def _service_pids(system: RunningSystem) -> dict[str, int]:
    """Each service's process: the child of this test process serving the service's port."""
    pids: dict[str, int] = {}
    for child in psutil.Process().children(recursive=True):
        try:
            environment = child.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for name, setting in PORT_SETTINGS.items():
            if environment.get(setting) == system.urls[name].rpartition(":")[2]:
                pids[name] = child.pid
    assert set(pids) == SERVICES, f"service processes not found: {pids}"
    return pids


@pytest.fixture(scope="module")
def hostile_system(
    kafka_env: dict[str, str],
    system_topics: dict[str, str],
    system_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[HostileSystem]:
    tmp_path = tmp_path_factory.mktemp("hostile")
    with MailSink(directory=tmp_path / "mail", port=free_port()) as mail:
        for system in run_system(
            kafka_env,
            system_topics,
            system_database,
            tmp_path,
            NOTIFIER_SMTP_HOST=mail.host,
            NOTIFIER_SMTP_PORT=str(mail.port),
            # Due stalls looked for often: a stall clock moved by a client's timestamp
            # shows (as a stall of a canary) before the test ends.
            STAGE_ENGINE_STALL_CHECK_INTERVAL_S="0.1",
        ):
            yield HostileSystem(system, mail, _service_pids(system))


class Poster:
    """Posts requests to ingest, checks each answer, and keeps what the pipeline must show."""

    def __init__(self, client: httpx.Client, journal: Path) -> None:
        self.client = client
        self.journal = journal
        self.answers: Counter[int] = Counter()
        self.dead_lettered_by_ingest = 0

    def post(self, route: str, body: Any, *, ascii_only: bool = True) -> None:
        # Lone surrogates are valid JSON only as escapes; sent raw they are not UTF-8
        # (a 400, also a documented answer).
        data = json.dumps(body, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
        response = self.client.post(
            route,
            content=data,
            headers={"Content-Type": "application/json"},
            auth=(WRITE_KEY, ""),
        )
        with self.journal.open("a") as journal:
            line = {"route": route, "status": response.status_code, "body": body}
            journal.write(json.dumps(line) + "\n")
        status = response.status_code
        self.answers[status] += 1
        assert status in (200, 400, 413), f"{route} answered {status}: {response.text[:2000]}"
        if status != 200:
            error = ErrorBody.model_validate(response.json())
            assert error, response.text
        elif route == "/v1/batch":
            self.dead_lettered_by_ingest += len(
                BatchAccepted.model_validate(response.json()).rejected
            )


def _canaries(partitions: list[int], count_of_changes: int) -> dict[str, tuple[int, int]]:
    """One contact per partition of the contact-events and stage-changed topics, picked with
    the producer's own partitioner (murmur2 of the key, as in the Java client)."""
    partitioner = DefaultPartitioner()
    changes = list(range(count_of_changes))
    canaries: dict[str, tuple[int, int]] = {}
    events_left, changes_left = set(partitions), set(changes)
    for _ in range(10_000):
        if not events_left and not changes_left:
            break
        contact = f"canary-{uuid.uuid4().hex[:12]}"
        on_events = partitioner(contact.encode(), partitions, partitions)
        on_changes = partitioner(contact.encode(), changes, changes)
        if on_events in events_left or on_changes in changes_left:
            canaries[contact] = (on_events, on_changes)
            events_left.discard(on_events)
            changes_left.discard(on_changes)
    assert not events_left and not changes_left
    return canaries


def _partitions(system: RunningSystem, topic: str) -> list[int]:
    client = AdminClient({"bootstrap.servers": system.bootstrap_servers})
    name = system.topics[topic]
    return sorted(client.list_topics(name, timeout=30).topics[name].partitions)


def _lifecycle_stage(client: httpx.Client, url: str, contact: str) -> str | None:
    response = client.get(f"{url}/v1/contacts/{contact}", headers=AUTH_HEADERS)
    if response.status_code != 200:
        return None
    for funnel in response.json()["funnels"]:
        if funnel["funnel"] == "lifecycle":
            return str(funnel["currentStage"])
    return None


def _mailed(mail: MailSink) -> set[str]:
    return {str(message["To"]) for message in mail.messages()}


def _kinds_by_contact(records: list[Record]) -> dict[str, list[dict[str, Any]]]:
    """The stage-changed topic's values by key (the contact), parsed."""
    found: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        contact = (record.key or b"").decode("utf-8", "backslashreplace")
        found.setdefault(contact, []).append(json.loads(record.value))
    return found


def _metric_total(exposition: str, name: str) -> float:
    """The sum of a counter over all its labels."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        if family.name == name
        for sample in family.samples
        if sample.name == f"{name}_total"
    )


def test_no_hostile_value_stalls_any_consumer(
    hostile_system: HostileSystem, tmp_path: Path
) -> None:
    system, mail = hostile_system.system, hostile_system.mail
    journal = tmp_path / "posted.jsonl"

    def failure(message: str) -> str:
        return f"{message}\n(requests posted: {journal})\n{_log_tail(system.logs)}"

    with httpx.Client(base_url=system.urls["ingest"], timeout=60) as client:
        poster = Poster(client, journal)
        for route, body in KNOWN_HOSTILE:
            poster.post(route, body)

        @settings(
            max_examples=60,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(st.lists(st.tuples(requests, st.booleans()), min_size=1, max_size=10))
        def post_hostile_requests(drawn: list[tuple[tuple[str, Any], bool]]) -> None:
            for (route, body), ascii_only in drawn:
                poster.post(route, body, ascii_only=ascii_only)

        post_hostile_requests()
        assert poster.answers[200] > 0, f"nothing was accepted: {dict(poster.answers)}"

        # Behind everything posted, one canary per partition signs up with a valid address.
        partitions = _partitions(system, "TOPIC_CONTACT_EVENTS")
        changes = _partitions(system, "TOPIC_STAGE_CHANGED")
        canaries = _canaries(partitions, len(changes))
        for contact in canaries:
            poster.post(
                "/v1/track",
                {
                    "userId": contact,
                    "event": "Signed Up",
                    "context": {"traits": {"email": f"{contact}@example.com"}},
                },
            )
    answers = dict(poster.answers)

    # The stage engine: each canary's lifecycle change is on the stage-changed topic.
    reader = TopicReader(system.bootstrap_servers, system.topics["TOPIC_STAGE_CHANGED"])
    try:

        def changed(records: list[Record]) -> set[str]:
            return {
                contact
                for contact, values in _kinds_by_contact(records).items()
                if contact in canaries
                and any(
                    v.get("kind") == "stage_changed" and v.get("funnel") == "lifecycle"
                    for v in values
                )
            }

        reader.read_until(lambda records: changed(records) == set(canaries), timeout_s=WAIT_S)
        stage_changes = list(reader.records)
    finally:
        reader.close()
    late = {c: canaries[c] for c in set(canaries) - changed(stage_changes)}
    assert not late, failure(f"stage engine: no change for canaries (partitions) {late}")
    on_changes = {r.partition for r in stage_changes if r.key and r.key.decode() in canaries}
    assert on_changes == set(changes), f"canaries missed partitions: {on_changes}"
    # The projection: each canary is a lead in the read API.
    engine = system.urls["stage-engine"]
    deadline = time.monotonic() + WAIT_S
    with httpx.Client(timeout=10) as client:
        unseen = set(canaries)
        while unseen and time.monotonic() < deadline:
            unseen = {c for c in unseen if _lifecycle_stage(client, engine, c) != "lead"}
            if unseen:
                time.sleep(0.5)
    assert not unseen, failure(
        f"projection: canaries not in the read API {[canaries[c] for c in unseen]}"
    )

    # The notifier: each canary got its welcome mail, through a real SMTP server.
    wanted = {f"{contact}@example.com" for contact in canaries}
    deadline = time.monotonic() + WAIT_S
    while not wanted <= _mailed(mail) and time.monotonic() < deadline:
        time.sleep(0.5)
    missing = wanted - _mailed(mail)
    assert not missing, failure(f"notifier: no welcome mail for {sorted(missing)}")

    # No service restarted or died on the way.
    for name, pid in hostile_system.pids.items():
        assert psutil.pid_exists(pid), failure(f"{name} (pid {pid}) died")
        status = psutil.Process(pid).status()
        assert status != psutil.STATUS_ZOMBIE, failure(f"{name} (pid {pid}) exited")
    assert _service_pids(system) == hostile_system.pids, failure("a service was restarted")

    # Whatever was refused on the way is a dead letter with a reason and the original.
    reader = TopicReader(system.bootstrap_servers, system.topics["TOPIC_REJECTED"])
    try:
        assert reader.read_to_end(timeout_s=WAIT_S), "the rejected topic did not end"
        dead = list(reader.records)
    finally:
        reader.close()
    by_service: Counter[str] = Counter()
    for record in dead:
        rejected = RejectedRecord.model_validate_json(record.value)
        by_service[rejected.service] += 1
        assert rejected.service in DEAD_LETTERERS, rejected
        assert rejected.errors and all(error.strip() for error in rejected.errors), rejected
        assert rejected.original, rejected
        assert record.headers["ce_type"] == "funnel.rejected.v1"
        assert record.headers["ce_id"] == rejected.id
        assert rejected.key not in canaries, f"a canary was dead-lettered: {rejected}"
    assert by_service["ingest"] == poster.dead_lettered_by_ingest, (by_service, answers)
    # ... and counted: the stage engine's count of refusals matches its dead letters.
    metrics = httpx.get(f"{engine}/metrics", headers=AUTH_HEADERS).text
    counted = _metric_total(metrics, "funnel_stage_engine_rejected")
    assert counted == by_service["stage-engine"] + by_service["stage-engine-projection"]
    print(f"answers {answers}; dead letters by service {dict(by_service)}")

    # A client's clock cannot announce stalls: the canaries entered their stage just now.
    # (Read last, to give a wrongly advanced stall clock the most time to show.)
    everything = read_all(system.bootstrap_servers, system.topics["TOPIC_STAGE_CHANGED"])
    stalled = [
        value
        for contact, values in _kinds_by_contact(everything).items()
        if contact in canaries
        for value in values
        if value.get("kind") == "stage_stalled"
    ]
    assert not stalled, failure(f"stalls announced for contacts that just signed up: {stalled}")
