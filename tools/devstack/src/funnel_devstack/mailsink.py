"""A local SMTP sink (aiosmtpd): accepts every mail and keeps it as an ``.eml`` file.

``make dev`` runs one on ``FUNNEL_DEV_SMTP_PORT`` and points the notifier at
it; mails land in ``.funnel-dev/mail/``, newest last by name. The tests use
the same class as a real SMTP server.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

__all__ = ["MailSink"]


class _SaveHandler:
    def __init__(self, sink: MailSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self._sink._store(envelope.content, list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


class MailSink:
    def __init__(self, *, directory: Path, port: int, host: str = "127.0.0.1") -> None:
        self.directory = directory
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._controller: Controller | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._controller = Controller(_SaveHandler(self), hostname=self.host, port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _store(self, content: bytes, recipients: list[str]) -> None:
        with self._lock:
            name = f"{time.strftime('%Y%m%dT%H%M%S')}-{next(self._counter):05d}.eml"
            (self.directory / name).write_bytes(content)

    def messages(self) -> list[EmailMessage]:
        """Every mail received so far, oldest first, parsed."""
        with self._lock:
            paths = sorted(self.directory.glob("*.eml"))
            raw = [path.read_bytes() for path in paths]
        return [
            email.message_from_bytes(data, _class=EmailMessage, policy=email.policy.default)
            for data in raw
        ]

    def __enter__(self) -> MailSink:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
