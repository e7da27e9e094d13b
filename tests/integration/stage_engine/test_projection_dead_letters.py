"""The projection, in a real worker, against PostgreSQL: a record it refuses fails only itself."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from datetime import timedelta

import pytest
from funnel_shared.events import RejectedRecord
from funnel_shared.settings import KafkaSettings

from tests.integration.conftest import StageEngineFactory
from tests.support.contact_events import START
from tests.support.kafka_reader import read_records
from tests.support.processes import http_get
from tests.support.projection_helpers import wait_until
from tests.support.stage_outputs import journey, publish_outputs

pytestmark = pytest.mark.integration

STAGES = ["visitor", "lead"]


async def test_stage_changes_postgresql_refuses_are_dead_lettered_and_later_contacts_stored(
    stage_engine_worker: StageEngineFactory,
    kafka_settings: KafkaSettings,
    topic_env: dict[str, str],
) -> None:
    run = uuid.uuid4().hex[:8]
    [with_nul] = journey(f"nul-{run}", "lifecycle", [("lead", START)], stages=STAGES)
    with_nul = with_nul.model_copy(update={"traits": {"name": "a\x00b"}})
    # Random hex: PostgreSQL compresses index entries, and a repetitive id would fit.
    long_id = f"long-{run}-" + secrets.token_hex(1500)
    [too_long] = journey(long_id, "lifecycle", [("lead", START)], stages=STAGES)
    later = [f"later-{run}-{n}" for n in range(24)]
    followers = [
        change
        for n, contact in enumerate(later)
        for change in journey(
            contact, "lifecycle", [("lead", START + timedelta(minutes=n))], stages=STAGES
        )
    ]
    worker = stage_engine_worker()
    worker.start()
    await asyncio.to_thread(worker.wait_ready)
    assert worker.process is not None
    pid = worker.process.pid

    # Straight onto the stage-changed topic, as a buggy or hostile producer could.
    await publish_outputs(
        kafka_settings, topic_env["TOPIC_STAGE_CHANGED"], [with_nul, too_long, *followers]
    )

    async def later_contacts_shown() -> bool:
        for contact in later:
            status, _ = await asyncio.to_thread(http_get, f"{worker.url}/v1/contacts/{contact}")
            if status != 200:
                return False
        return True

    await wait_until(later_contacts_shown, "the read API to show all 24 later contacts")
    status, body = await asyncio.to_thread(http_get, f"{worker.url}/v1/contacts/{later[-1]}")
    assert "lead" in json.loads(body)["funnels"][0]["currentStage"]
    dead = await asyncio.to_thread(
        read_records,
        kafka_settings.bootstrap_servers,
        topic_env["TOPIC_REJECTED"],
        expected=2,
        timeout_s=90,
    )
    letters = {RejectedRecord.model_validate_json(record.value).key: record for record in dead}
    assert set(letters) == {with_nul.contact_id, long_id}, worker.log_tail()
    nul = RejectedRecord.model_validate_json(letters[with_nul.contact_id].value)
    assert (nul.service, nul.origin) == (
        "stage-engine-projection",
        topic_env["TOPIC_STAGE_CHANGED"],
    )
    assert nul.errors[0].startswith("PostgreSQL refused it: UntranslatableCharacterError")
    assert json.loads(nul.original)["id"] == with_nul.id
    long = RejectedRecord.model_validate_json(letters[long_id].value)
    assert long.errors[0].startswith("PostgreSQL refused it: ProgramLimitExceededError")
    status, _ = await asyncio.to_thread(http_get, f"{worker.url}/v1/contacts/{with_nul.contact_id}")
    assert status == 404
    assert worker.process.poll() is None and worker.process.pid == pid
