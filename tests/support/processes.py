"""Service processes for the integration and e2e tiers: started with a log file, never orphaned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from funnel_devstack.processes import die_with_parent, free_port, stop_process


def entry_point(name: str) -> str:
    """A console script of the workspace: it sits next to the test interpreter."""
    return str(Path(sys.executable).parent / name)


def start_logged(
    argv: list[str], *, env: dict[str, str], log_path: Path, cwd: Path
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, output to ``log_path`` (appended: restarts add to it)."""
    with open(log_path, "ab") as log:  # The child keeps its own copy of the descriptor.
        return subprocess.Popen(
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )


def log_tail(log_path: Path, chars: int = 4000) -> str:
    if not log_path.exists():
        return f"--- {log_path.name}: no log"
    return f"--- {log_path.name}\n{log_path.read_text(errors='replace')[-chars:]}"


def http_get(url: str, timeout_s: float = 2.0) -> tuple[int, str]:
    """Status and body; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError):
        return 0, ""


class StageEngineWorker:
    """One ``funnel-stage-engine`` process that the test can start, kill -9 and restart.

    Restarts keep the app id (consumer group) and the data directory, like a
    supervisor restarting a crashed pod with its volume.
    """

    def __init__(self, *, env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.data_dir = workdir / "data"
        self.log_path = workdir / "stage-engine.log"
        self.env = {
            **os.environ,
            **env,
            "STAGE_ENGINE_PORT": str(self.port),
            "STAGE_ENGINE_DATA_DIR": str(self.data_dir),
        }
        self._workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.process = start_logged(
            [entry_point("funnel-stage-engine")],
            env=self.env,
            log_path=self.log_path,
            cwd=self._workdir,
        )

    def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"stage engine exited at start-up\n{self.log_tail()}")
            if http_get(self.url + "/readyz")[0] == 200:
                return
            time.sleep(0.25)
        raise TimeoutError(f"stage engine not ready after {timeout_s:.0f}s\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL to the worker itself: no shutdown code runs, nothing is flushed."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout_s=20)

    def log_tail(self, chars: int = 4000) -> str:
        return log_tail(self.log_path, chars)
