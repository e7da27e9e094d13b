"""py-spy on a running worker: record collapsed stacks, then sum them into top frames.

The summary goes into the report's ``profile`` section: the share of samples
spent in each frame (own time, and including callees) and per package of the
innermost frame, which is where per-event overhead shows.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from funnel_devstack.processes import die_with_parent, stop_process

from funnel_bench.procs import entry_point

__all__ = ["Recording", "summarize"]

_FRAME = re.compile(r"^(?P<func>.*) \((?P<path>[^()]*?)(?::(?P<line>\d+))?\)$")
PACKAGES = (
    "funnel_stage_engine",
    "funnel_shared",
    "faust",
    "mode",
    "aiokafka",
    "kafka",
    "pydantic",
    "rocksdict",
    "asyncio",
    "json",
)


_WAITING = ("EpollSelector.select", "PollSelector.select", "KqueueSelector.select")


def _py_spy() -> str | None:
    local = Path(entry_point("py-spy"))
    return str(local) if local.exists() else shutil.which("py-spy")


class Recording:
    """``py-spy record`` of one process for a fixed time, in py-spy's raw (collapsed) format."""

    def __init__(self, pid: int, *, seconds: float, out: Path, rate: int = 100) -> None:
        self.out = out
        self.error: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        binary = _py_spy()
        if binary is None:
            self.error = "py-spy is not installed"
            return
        argv = [binary, "record", "--pid", str(pid), "--rate", str(rate)]
        argv += ["--duration", str(max(1, round(seconds))), "--format", "raw"]
        argv += ["--output", str(out), "--nonblocking"]
        self._log = out.with_suffix(".log")
        with open(self._log, "wb") as log:
            self._process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )

    def finish(self, timeout_s: float) -> None:
        if self._process is None:
            return
        try:
            self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stop_process(self._process)
        if not self.out.exists():
            self.error = "py-spy wrote nothing: " + self._log.read_text(errors="replace")[-500:]


def _short(frame: str) -> tuple[str, str]:
    """``func (a/b/site-packages/pkg/mod.py:12)`` as ``func (pkg/mod.py)``, and its package."""
    match = _FRAME.match(frame)
    if not match:
        return frame, "other"
    path = match["path"].split("site-packages/")[-1].split("/src/")[-1]
    if "/lib/python3" in path:
        path = path.split("/lib/python3")[-1].split("/", 1)[-1]
    top = path.split("/", 1)[0].removesuffix(".py")
    package = top if top in PACKAGES else "other"
    return f"{match['func']} ({path})", package


def summarize(raw: Path, *, top: int = 15) -> dict[str, Any]:
    """Shares of samples by frame (own and inclusive) and by package of the innermost frame."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f[0].startswith("thread ")]
        if not frames:
            continue
        total += count
        own[frames[-1][0]] += count
        packages[frames[-1][1]] += count
        for name in {name for name, _ in frames}:
            inclusive[name] += count

    def rows(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"frame": name, "share": round(n / total, 4)} for name, n in counter.most_common(top)
        ]

    waiting = sum(n for name, n in own.items() if name.startswith(_WAITING))
    return {
        "samples": total,
        # The event loop blocked in epoll: nothing to run, e.g. while awaiting the broker's acks.
        "waiting_in_select": round(waiting / total, 4) if total else None,
        "self": rows(own),
        "inclusive": rows(inclusive),
        "packages": {name: round(n / total, 4) for name, n in packages.most_common()},
    }
