"""The read API over the real engine's output: a stranger becomes a known prospect."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import WRITE_KEY, RunningSystem, _log_tail
from tests.support.access import AUTH_HEADERS

pytestmark = pytest.mark.e2e


async def _lifecycle(client: httpx.AsyncClient, url: str) -> dict[str, Any] | None:
    response = await client.get(url)
    if response.status_code != 200:
        return None
    funnels = [f for f in response.json()["funnels"] if f["funnel"] == "lifecycle"]
    return funnels[0] if funnels else None


async def test_an_anonymous_visitor_who_identifies_is_one_person_in_the_report(
    running_system: RunningSystem,
) -> None:
    anonymous, user = f"anon-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:8]}"
    start = datetime(2026, 11, 20, 9, tzinfo=UTC)

    def at(hours: int) -> str:
        return (start + timedelta(hours=hours)).isoformat()

    batch = [
        {"type": "page", "anonymousId": anonymous, "name": "Home", "timestamp": at(0)},
        {"type": "page", "anonymousId": anonymous, "name": "Pricing", "timestamp": at(1)},
        {"type": "page", "anonymousId": anonymous, "name": "Pricing", "timestamp": at(2)},
        {
            "type": "identify",
            "anonymousId": anonymous,
            "userId": user,
            "traits": {"email": f"{user}@example.com"},
            "timestamp": at(3),
        },
        {"type": "page", "anonymousId": anonymous, "name": "Pricing", "timestamp": at(4)},
    ]
    engine = running_system.urls["stage-engine"]
    async with httpx.AsyncClient(headers=AUTH_HEADERS) as client:
        response = await client.post(
            running_system.urls["ingest"] + "/v1/batch",
            json={"batch": batch},
            auth=(WRITE_KEY, ""),
        )
        assert response.status_code == 200, response.text

        deadline = asyncio.get_running_loop().time() + 120
        known = await _lifecycle(client, f"{engine}/v1/contacts/{user}")
        while (known is None or known["currentStage"] != "prospect") and (
            asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.25)
            known = await _lifecycle(client, f"{engine}/v1/contacts/{user}")
        assert known is not None and known["currentStage"] == "prospect", _log_tail(
            running_system.logs
        )
        assert [entry["toStage"] for entry in known["history"]][-1] == "prospect"

        stranger = (await client.get(f"{engine}/v1/contacts/{anonymous}")).json()
        assert stranger["mergedInto"] == user
        assert {merge["funnel"] for merge in stranger["merges"]} >= {"lifecycle"}

        report = (await client.get(f"{engine}/v1/funnels/lifecycle/report")).json()
        reached = {stage["stage"]: stage["reached"] for stage in report["stages"]}
        current = {stage["stage"]: stage["current"] for stage in report["stages"]}
    # One person: the anonymous visit and the identified lead and prospect.
    assert (reached["visitor"], reached["lead"], reached["prospect"]) == (1, 1, 1)
    assert (current["visitor"], current["lead"], current["prospect"]) == (0, 0, 1)
