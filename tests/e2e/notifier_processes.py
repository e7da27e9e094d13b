"""The notifier as a real process: start, wait until ready, kill -9, stop."""

from __future__ import annotations

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


def migrate_notifier(env: dict[str, str]) -> None:
    subprocess.run(
        [NOTIFIER, "migrate"], env={**os.environ, **env}, check=True, capture_output=True
    )


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
