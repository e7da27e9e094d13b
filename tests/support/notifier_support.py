"""Test parts for the notifier: a real HTTP webhook receiver, stage-engine records, waits.

The receiver checks every request with the ``standardwebhooks`` package, an
implementation of the spec independent of ours, and counts *acknowledged*
deliveries (answered 2xx) per ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

from aiokafka.partitioner import DefaultPartitioner
from funnel_notifier.domain.rules import builtin_rules_dir
from funnel_shared.events import ContactMerged, StageChanged, StageStalled
from funnel_shared.kafka import encode_model
from funnel_shared.publishing import OutboundRecord, Publisher, publish
from standardwebhooks import Webhook, WebhookVerificationError


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # Hold the request until ``release()`` (or the client goes away).
    delay_s: float = 0.0  # Think a little before answering.


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    status: int | None  # What we answered; None while held or when the client left.


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 with scripted replies (then 200 for everything)."""

    def __init__(
        self,
        secret: str | None = None,
        script: list[Reply] | None = None,
        default: Reply | None = None,
    ) -> None:
        self.secret = secret or new_secret()
        self.script = list(script or [])
        self.default = default or Reply()
        self.requests: list[Received] = []
        self.held = threading.Event()  # Set while a request is being held.
        self._release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def release(self) -> None:
        self._release.set()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("content-length", 0)))
        headers = {key.lower(): value for key, value in request.headers.items()}
        try:
            Webhook(self.secret).verify(body, headers)
            verified = True
        except WebhookVerificationError:
            verified = False
        entry = Received(headers=headers, body=body, verified=verified, status=None)
        with self._lock:
            self.requests.append(entry)
            reply = self.script.pop(0) if self.script else self.default
        if reply.hang:
            self.held.set()
            self._release.wait(timeout=120)
            return  # Never answered: the connection closes with the handler.
        if reply.delay_s:
            time.sleep(reply.delay_s)
        status = reply.status if verified else 401
        request.send_response(status)
        for name, value in reply.headers.items():
            request.send_header(name, value)
        request.send_header("content-length", "0")
        request.end_headers()
        entry.status = status

    def acknowledged(self) -> Counter[str]:
        """webhook-id -> how many times we answered it with 2xx."""
        with self._lock:
            return Counter(
                r.headers["webhook-id"]
                for r in self.requests
                if r.status is not None and 200 <= r.status < 300
            )

    def ids(self) -> list[str]:
        with self._lock:
            return [r.headers.get("webhook-id", "") for r in self.requests]


def webhook_rules(funnel: str, *rules: tuple[str, str] | tuple[str, str, str]) -> str:
    """A rule file: per ``(rule id, stage)`` or ``(rule id, stage, after)``, a webhook to
    HOOK_URL (signed with HOOK_SECRET) when a contact enters that stage of ``funnel``."""
    lines = [f"funnel: {funnel}", "rules:"]
    for rule_id, stage, *after in rules:
        lines += [f"  - id: {rule_id}", "    trigger: entered", f"    stage: {stage}"]
        lines += [f"    after: {delay}" for delay in after]
        lines.append("    action: {type: webhook, url_env: HOOK_URL, secret_env: HOOK_SECRET}")
    return "\n".join(lines) + "\n"


def stage_change(
    contact_id: str,
    *,
    funnel: str = "lifecycle",
    to_stage: str = "lead",
    from_stage: str | None = None,
    traits: dict[str, Any] | None = None,
    event_time: datetime | None = None,
    cause_kind: Literal["event", "merge", "stall"] = "event",
    cause_message_id: str | None = None,
) -> StageChanged:
    """A stage change as the stage engine publishes it; for a move after a stall or a
    merge, give ``cause_kind`` and the stall's id or the merge's id."""
    now = datetime.now(UTC)
    return StageChanged(
        id=str(uuid.uuid4()),
        funnel=funnel,
        funnel_version="test",
        contact_id=contact_id,
        from_stage=from_stage,
        to_stage=to_stage,
        furthest_stage=to_stage,
        rule_id="test.rule",
        cause_message_id=cause_message_id or str(uuid.uuid4()),
        cause_kind=cause_kind,
        event_time=event_time or now,
        processed_at=now,
        traits=traits or {},
    )


def stage_stalled(
    contact_id: str,
    *,
    funnel: str = "lifecycle",
    stage: str = "prospect",
    traits: dict[str, Any] | None = None,
    move_to: str | None = None,
) -> StageStalled:
    now = datetime.now(UTC)
    return StageStalled(
        id=str(uuid.uuid4()),
        funnel=funnel,
        funnel_version="test",
        contact_id=contact_id,
        stage=stage,
        furthest_stage=stage,
        entered_at=now - timedelta(days=30),
        entry_id=str(uuid.uuid4()),
        stalled_after_seconds=timedelta(days=30).total_seconds(),
        move_to=move_to,
        event_time=now,
        processed_at=now,
        traits=traits or {},
    )


def contact_merged(
    contact_id: str,
    merged_contact_id: str,
    *,
    funnel: str = "lifecycle",
    current_stage: str = "lead",
    traits: dict[str, Any] | None = None,
) -> ContactMerged:
    now = datetime.now(UTC)
    return ContactMerged(
        id=str(uuid.uuid4()),
        merge_id=str(uuid.uuid4()),
        funnel=funnel,
        funnel_version="test",
        contact_id=contact_id,
        merged_contact_id=merged_contact_id,
        current_stage=current_stage,
        furthest_stage=current_stage,
        merged_current_stage=current_stage,
        merged_furthest_stage=current_stage,
        cause_message_id=str(uuid.uuid4()),
        event_time=now,
        processed_at=now,
        traits=traits or {},
    )


async def publish_change(
    publisher: Publisher,
    topic: str,
    change: StageChanged | StageStalled | ContactMerged,
    *,
    key: str | None = None,
) -> None:
    """Publish a stage-engine record as the stage engine does (``ce_type`` from its kind),
    keyed by its contact unless ``key`` says otherwise."""
    record = encode_model(
        change,
        key=change.contact_id if key is None else key,
        event_id=change.id,
        event_type=f"funnel.{change.kind}",
        source="/test",
        time=change.processed_at,
    )
    await publish(publisher, topic, record)


async def publish_raw(publisher: Publisher, topic: str, *, key: str, value: bytes) -> None:
    """Publish bytes as they are, without headers: what a broken or newer producer sends."""
    await publish(publisher, topic, OutboundRecord(key=key, value=value, headers=[]))


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout_s: float = 60,
    what: str = "condition",
) -> None:
    """Wait (bounded) until ``check`` is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} not met within {timeout_s:g}s")


def write_rules(directory: Path, text: str) -> None:
    """A rules directory with one file and the shipped templates beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rules.yaml").write_text(text)
    shutil.copytree(builtin_rules_dir() / "templates", directory / "templates", dirs_exist_ok=True)


def contacts_on_one_partition(count: int, partitions: int, *, first: str) -> list[str]:
    """``count`` new contact ids that the producer's default partitioner (murmur2 of the
    key) puts on the same partition as ``first``: records keyed by them are read in order,
    one partition, behind whatever ``first`` sent."""
    partitioner = DefaultPartitioner()
    numbers = list(range(partitions))

    def partition(key: str) -> int:
        return int(partitioner(key.encode(), numbers, numbers))

    target = partition(first)
    contacts: list[str] = []
    while len(contacts) < count:
        contact = f"c-{uuid.uuid4().hex}"
        if partition(contact) == target:
            contacts.append(contact)
    return contacts
