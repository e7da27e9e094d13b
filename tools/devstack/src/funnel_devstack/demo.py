"""``funnel-dev demo``: send a scripted set of customer journeys and show what they did.

Ten visitors browse; six sign up (lead); three request a demo (prospect); one
orders (customer). The events go through ingest with the dev write key, the
stage engine moves the contacts, and the projection feeds the funnel page.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from funnel_devstack.settings import DEV_WRITE_KEY, DevSettings

__all__ = ["demo_batch", "post_batch", "run_demo"]


def demo_batch(run: str, now: datetime) -> list[dict[str, Any]]:
    """The journeys as Segment messages, spread over the last three days."""
    messages: list[dict[str, Any]] = []
    for i in range(10):
        user = f"demo-{run}-{i}"
        at = now - timedelta(days=3) + timedelta(hours=5 * i)
        steps: list[dict[str, Any]] = [{"type": "page", "name": "Home"}]
        if i < 6:
            steps.append({"type": "track", "event": "Signed Up", "properties": {"plan": "free"}})
        if i < 3:
            steps.append({"type": "track", "event": "Demo Requested"})
        if i < 1:
            steps.append({"type": "track", "event": "Order Completed", "properties": {"total": 99}})
        for n, step in enumerate(steps):
            stamp = (at + timedelta(hours=2 * n + i % 3)).isoformat()
            messages.append({"userId": user, "timestamp": stamp, **step})
    return messages


def run_demo(settings: DevSettings, *, timeout_s: float = 60.0) -> int:
    ingest = f"http://127.0.0.1:{settings.ingest_port}"
    engine = f"http://127.0.0.1:{settings.stage_engine_port}"
    run = uuid.uuid4().hex[:6]
    batch = demo_batch(run, datetime.now(UTC))
    try:
        before = _reached(engine)
        answer = post_batch(f"{ingest}/v1/batch", {"batch": batch}, write_key=DEV_WRITE_KEY)
    except (urllib.error.URLError, OSError) as exc:
        print(f"funnel-dev demo: is `make dev` running? ({exc})")
        return 1
    print(f"sent {answer.get('accepted')} events for 10 contacts (demo-{run}-0 .. demo-{run}-9)")
    # Each demo adds 10 visitors, 6 leads, 3 prospects and 1 customer to "reached".
    expected = [have + add for have, add in zip(before, [10, 6, 3, 1, 0, 0], strict=False)]
    deadline = time.monotonic() + timeout_s
    reached = _reached(engine)
    while time.monotonic() < deadline and reached != expected:
        time.sleep(0.5)
        reached = _reached(engine)
    print("lifecycle, reached per stage (all time):", reached)
    print(f"\n  funnel page:   {engine}/funnels/lifecycle")
    print(f"  a customer:    {engine}/v1/contacts/demo-{run}-0")
    print(f"  report (JSON): {engine}/v1/funnels/lifecycle/report")
    return 0


def _reached(engine: str) -> list[int]:
    with urllib.request.urlopen(f"{engine}/v1/funnels/lifecycle/report", timeout=5) as response:
        report = json.load(response)
    return [stage["reached"] for stage in report["stages"]]


def post_batch(url: str, body: dict[str, Any], *, write_key: str) -> dict[str, Any]:
    """POST ``body`` to ingest with ``write_key``; its JSON answer."""
    auth = base64.b64encode(f"{write_key}:".encode()).decode()
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Basic {auth}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.load(response)
    return answer
