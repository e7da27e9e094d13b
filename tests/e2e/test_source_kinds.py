"""A purchase counts only from a server source when the funnel says so, end to end.

The three services as real processes; the stage engine runs a funnel whose
order rule requires ``source: {kind: server}``. ``Order Completed`` posted
with the public browser key leaves the contact a visitor; the same event with
the server key makes a customer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import WRITE_KEY, RunningSystem, _log_tail, run_system
from tests.support.access import AUTH_HEADERS

pytestmark = pytest.mark.e2e

SERVER_KEY = "sk-e2e-server"
SHOP = """
name: shop
stages: [visitor, customer]
rules:
  - id: order
    to: customer
    match: {event: Order Completed, source: {kind: server}}
  - {id: visit, to: visitor, match: {type: track}}
"""


@pytest.fixture(scope="module")
def shop_system(
    kafka_env: dict[str, str],
    system_topics: dict[str, str],
    system_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningSystem]:
    tmp_path = tmp_path_factory.mktemp("shop")
    funnels = tmp_path / "funnels"
    funnels.mkdir()
    (funnels / "shop.yaml").write_text(SHOP)
    keys = {"web": WRITE_KEY, "orders": {"key": SERVER_KEY, "kind": "server"}}
    yield from run_system(
        kafka_env,
        system_topics,
        system_database,
        tmp_path,
        write_keys=keys,
        STAGE_ENGINE_FUNNELS_DIR=str(funnels),
    )


async def _shop_history(client: httpx.AsyncClient, url: str, rules: int) -> list[dict[str, Any]]:
    """The contact's shop history once it has ``rules`` entries (or what there is at 90 s)."""
    deadline = asyncio.get_running_loop().time() + 90
    history: list[dict[str, Any]] = []
    while asyncio.get_running_loop().time() < deadline:
        response = await client.get(url)
        if response.status_code == 200:
            [shop] = [f for f in response.json()["funnels"] if f["funnel"] == "shop"]
            history = shop["history"]
            if len(history) >= rules:
                break
        await asyncio.sleep(0.25)
    return history


async def test_an_order_from_the_browser_key_does_not_make_a_customer_the_server_key_does(
    shop_system: RunningSystem,
) -> None:
    contact = f"buyer-{uuid.uuid4().hex[:8]}"
    engine = shop_system.urls["stage-engine"] + f"/v1/contacts/{contact}"
    order = {"userId": contact, "event": "Order Completed", "properties": {"total": 99}}
    async with httpx.AsyncClient(headers=AUTH_HEADERS) as client:
        ingest = shop_system.urls["ingest"] + "/v1/track"
        # The sender's own claim to be a server is ignored: the key decides.
        forged = {**order, "sourceKind": "server", "messageId": f"{contact}-browser"}
        response = await client.post(ingest, json=forged, auth=(WRITE_KEY, ""))
        assert response.status_code == 200, response.text
        history = await _shop_history(client, engine, rules=1)
        assert [(h["ruleId"], h["toStage"]) for h in history] == [("visit", "visitor")], _log_tail(
            shop_system.logs
        )

        real = {**order, "messageId": f"{contact}-server"}
        response = await client.post(ingest, json=real, auth=(SERVER_KEY, ""))
        assert response.status_code == 200, response.text
        history = await _shop_history(client, engine, rules=2)
    assert [(h["ruleId"], h["toStage"]) for h in history] == [
        ("visit", "visitor"),
        ("order", "customer"),
    ], _log_tail(shop_system.logs)
