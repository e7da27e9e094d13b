"""``funnel-dev demo <name>``: play an example's journey on the dev stack and say what it did.

The dev stack runs with the example's funnels (``STAGE_ENGINE_FUNNELS_DIR``) and
follow-up rules (``NOTIFIER_RULES_DIR``), at first without the notifier. The journey
goes in through ingest as one batch; once the stage engine has handled every event
(no consumer lag) and the contacts' stage histories stop changing, the notifier starts.
It stores that backlog before its dispatcher starts, so a step that a later stage change
cancels (``unless: moved_on``) is cancelled on every run, although the journey's
follow-ups are all due at once. Then this module waits until the follow-ups stop
changing and prints everything with the URLs to look at.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from funnel_devstack.demo import post_batch
from funnel_devstack.journeys import Example, contact_id, journey_batch

__all__ = ["example_environment", "kafka_task_topics", "play_example"]

# The summary is printed once this many polls in a row saw nothing change.
_QUIET_POLLS = 4
_POLL_S = 1.0


def example_environment(example: Example) -> dict[str, str]:
    """The settings that point the stage engine and the notifier at the example."""
    return {
        "STAGE_ENGINE_FUNNELS_DIR": str(example.funnels.resolve()),
        "NOTIFIER_RULES_DIR": str(example.rules.resolve()),
    }


def kafka_task_topics(rules_dir: Path) -> list[str]:
    """The topics the example's ``kafka`` follow-ups write to (the dev stack creates them;
    the notifier validates the files itself at start)."""
    topics: set[str] = set()
    for path in sorted(rules_dir.glob("*.y*ml")):
        content = yaml.safe_load(path.read_bytes()) or {}
        for rule in content.get("rules") or []:
            action = rule.get("action") or {} if isinstance(rule, dict) else {}
            if action.get("type") == "kafka" and isinstance(action.get("topic"), str):
                topics.add(action["topic"])
    return sorted(topics)


def play_example(
    example: Example,
    *,
    urls: dict[str, str],
    write_key: str,
    headers: dict[str, str] | None = None,
    start_notifier: Callable[[], None] = lambda: None,
    timeout_s: float = 90.0,
    say: Callable[[str], None] = print,
) -> str:
    """Send the journey, wait for the stage engine to settle, start the notifier, wait for
    the follow-ups to settle, print what happened; the run id."""
    run = uuid.uuid4().hex[:6]
    batch = journey_batch(example.journey, run=run, now=datetime.now(UTC))
    answer = post_batch(f"{urls['ingest']}/v1/batch", {"batch": batch}, write_key=write_key)
    contacts = {contact_id(name, run): name for name in example.journey.contacts}
    say(
        f"\n{example.name}: sent {answer.get('accepted')} events for {len(contacts)} contacts"
        f" ({', '.join(contacts)})"
    )
    _stages_settled(urls["stage-engine"], list(contacts), headers or {}, timeout_s)
    start_notifier()
    views = _settled(urls, list(contacts), headers or {}, timeout_s)
    say(f"{example.journey.description}\n")
    for contact, name in contacts.items():
        say(f"{contact}: {example.journey.contacts[name]}")
        stages, followups = views[contact]
        for funnel in stages:
            path = " -> ".join(
                f"{change['toStage']} ({change['ruleId']})" for change in funnel["history"]
            )
            say(f"  {funnel['funnel']}: {path}")
        for followup in followups:
            due = "" if followup["status"] != "scheduled" else f", due {followup['dueAt']}"
            what = f"{followup['ruleId']} ({followup['channel']})"
            say(f"  follow-up {what}: {followup['status']}{due}")
    engine = urls["stage-engine"]
    say("\nLook at it:")
    for name in _funnel_names(engine, headers or {}):
        say(f"  funnel page   {engine}/funnels/{name}")
    first = next(iter(contacts))
    say(f"  a contact     {engine}/v1/contacts/{first}")
    say(f"  follow-ups    {urls['notifier']}/v1/followups")
    return run


def _settled(
    urls: dict[str, str], contacts: list[str], headers: dict[str, str], timeout_s: float
) -> dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Each contact's funnels and follow-ups, once several polls in a row agree."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    quiet = 0
    while time.monotonic() < deadline and quiet < _QUIET_POLLS:
        time.sleep(_POLL_S)
        views = {contact: _view(urls, contact, headers) for contact in contacts}
        known = all(stages for stages, _ in views.values())
        statuses = {f["status"] for _, followups in views.values() for f in followups}
        pending = bool(statuses & {"sending", "retrying"})
        quiet = quiet + 1 if views == last and known and not pending else 0
        last = views
    return last


def _stages_settled(
    engine: str, contacts: list[str], headers: dict[str, str], timeout_s: float
) -> None:
    """Until the stage engine has committed every event it was sent (so published their
    stage changes) and several polls in a row show the same stage histories."""
    deadline = time.monotonic() + timeout_s
    last: list[Any] = []
    quiet = 0
    while time.monotonic() < deadline and quiet < _QUIET_POLLS:
        time.sleep(_POLL_S)
        views = [
            _get(f"{engine}/v1/contacts/{urllib.parse.quote(c, safe='')}", headers)
            for c in contacts
        ]
        lag = _consumer_lag(engine, headers)
        done = all(views) and lag is not None and lag == 0
        quiet = quiet + 1 if views == last and done else 0
        last = views


def _consumer_lag(engine: str, headers: dict[str, str]) -> int | None:
    """The stage engine's total lag on the contact events; None before it reports one."""
    request = urllib.request.Request(f"{engine}/metrics", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("funnel_stage_engine_consumer_lag{")
    ]
    return int(sum(values)) if values else None


def _view(
    urls: dict[str, str], contact: str, headers: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    quoted = urllib.parse.quote(contact, safe="")
    stages = _get(f"{urls['stage-engine']}/v1/contacts/{quoted}", headers)
    followups = _get(f"{urls['notifier']}/v1/followups?contact={quoted}&limit=100", headers)
    funnels = sorted((stages or {}).get("funnels", []), key=lambda f: str(f["funnel"]))
    items = sorted((followups or {}).get("items", []), key=lambda f: (f["dueAt"], f["ruleId"]))
    return funnels, items


def _funnel_names(engine: str, headers: dict[str, str]) -> list[str]:
    answer = _get(f"{engine}/v1/funnels", headers) or []
    return [str(funnel["name"]) for funnel in answer]


def _get(url: str, headers: dict[str, str]) -> Any:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise
