"""Child processes of the bench: started with a log, tied to the bench's life, CPU accounted."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil
from funnel_devstack.processes import die_with_parent, stop_process

__all__ = [
    "CpuMeter",
    "Finished",
    "Service",
    "cpu_seconds",
    "entry_point",
    "http_status",
    "run_measured",
    "venv_python",
]


def entry_point(name: str) -> str:
    """A console script of the workspace: it sits next to the interpreter running the bench."""
    return str(Path(sys.executable).parent / name)


def venv_python() -> str:
    return sys.executable


def http_status(url: str, timeout_s: float = 2.0) -> int:
    """The status of a GET, 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process and its reaped children."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


class Service:
    """A long-lived child (a server or a worker): start, wait for it, measure its CPU, stop."""

    def __init__(
        self, name: str, argv: list[str], *, env: Mapping[str, str], log_dir: Path
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=log_dir,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_http(self, url: str, *, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited at start-up\n{self.log_tail()}")
            if http_status(url) == 200:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout_s:.0f}s\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)

    def stop(self) -> None:
        stop_process(self.process, timeout_s=20)

    def log_tail(self, chars: int = 3000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- {self.name}\n{text[-chars:]}"


class CpuMeter:
    """CPU seconds of named processes between ``start()`` and ``stop()``."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self._pids = dict(pids)
        self._before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> None:
        self._before = {name: cpu_seconds(pid) for name, pid in self._pids.items()}

    def stop(self) -> dict[str, float]:
        self.used = {
            name: round(cpu_seconds(pid) - self._before[name], 3)
            for name, pid in self._pids.items()
        }
        return self.used


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    cpu_seconds: float


def run_measured(
    argv: list[str], *, env: Mapping[str, str] | None = None, timeout_s: float, log_dir: Path
) -> Finished:
    """Run a short-lived child to its end; its CPU comes from the kernel's rusage at reaping."""
    out_path = log_dir / f"{Path(argv[0]).name}-{time.monotonic_ns()}.out"
    with open(out_path, "wb") as out:
        process = subprocess.Popen(
            argv,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            stop_process(process)
            raise TimeoutError(f"{argv[0]} still running after {timeout_s:.0f}s")
        time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)  # Popen must not reap it again.
    return Finished(
        returncode=process.returncode,
        stdout=out_path.read_text(errors="replace"),
        cpu_seconds=round(usage.ru_utime + usage.ru_stime, 3),
    )
