"""The notifier as a real process: start, wait until ready, kill -9, stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from funnel_devstack.processes import die_with_parent, free_port, stop_process

from tests.conftest import migrated_copy, unique
from tests.support.access import token_env
from tests.support.notifier_support import WebhookReceiver, write_rules

NOTIFIER = str(Path(sys.executable).parent / "funnel-notifier")


@dataclass
class NotifierProcess:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill_hard(self) -> None:
        """SIGKILL: no clean-up, no offset commit, no finished attempt."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        stop_process(self.process, timeout_s=20)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


async def notifier_environment(
    base: dict[str, str], admin_dsn: str, rules_dir: Path, rules: str, **settings: str
) -> dict[str, str]:
    """A notifier's environment: the test's broker and topics (``base``), a migrated
    database of its own, its rules, a unique group and quick timings (``settings``
    override them)."""
    write_rules(rules_dir, rules)
    return {
        **base,
        "DATABASE_URL": await migrated_copy(admin_dsn, "funnel-notifier"),
        "NOTIFIER_GROUP_ID": unique("notifier"),
        "NOTIFIER_RULES_DIR": str(rules_dir),
        "NOTIFIER_POLL_INTERVAL_S": "0.2",
        "NOTIFIER_ATTEMPT_TIMEOUT_S": "2",
        "NOTIFIER_CLAIM_GRACE_S": "1",
        "NOTIFIER_API_TOKENS": token_env()["NOTIFIER_API_TOKENS"],  # Clients send AUTH_HEADERS.
        **settings,
    }


def with_hook(env: dict[str, str], receiver: WebhookReceiver) -> dict[str, str]:
    """``env`` with HOOK_URL and HOOK_SECRET set for ``receiver`` (what the rules' webhooks use)."""
    return {**env, "HOOK_URL": receiver.url, "HOOK_SECRET": receiver.secret}


class NotifierProcesses:
    """The notifier processes a test starts, each stopped when the test ends."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[NotifierProcess] = []

    async def start(self, env: dict[str, str], name: str) -> NotifierProcess:
        process = start_notifier_process(env, self.logs, name)
        self.started.append(process)
        await asyncio.to_thread(wait_ready, process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            process.stop()


def start_notifier_process(env: dict[str, str], logs: Path, name: str) -> NotifierProcess:
    port = free_port()
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [NOTIFIER],
            env={**os.environ, **env, "NOTIFIER_PORT": str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    return NotifierProcess(process=process, port=port, log=log)


def wait_ready(notifier: NotifierProcess, *, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if notifier.process.poll() is not None:
            raise RuntimeError(f"notifier exited at start-up:\n{notifier.output()}")
        try:
            with urllib.request.urlopen(notifier.url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"notifier not ready within {timeout_s:g}s:\n{notifier.output()}")
