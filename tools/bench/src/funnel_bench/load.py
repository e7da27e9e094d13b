"""HTTP load: ``wrk`` with a Lua body script when installed, else a Python load generator.

Both run as a separate process, post the same body over a fixed number of
keep-alive connections for a fixed time, and print one ``BENCH-JSON`` line.
The report says which one ran: wrk costs the server's machine far less CPU.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from funnel_bench.procs import run_measured, venv_python

__all__ = ["LoadResult", "LoadSpec", "load_tool", "run_load"]

MARKER = "BENCH-JSON "

_LUA = """-- Written by funnel-bench: post one body, report totals as JSON.
wrk.method = "POST"
local f = assert(io.open("{body_path}", "rb"))
wrk.body = f:read("*a")
f:close()
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{marker}{{"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d}}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class LoadSpec:
    url: str
    body: bytes
    headers: Mapping[str, str]
    connections: int
    duration_s: float


@dataclass(frozen=True)
class LoadResult:
    tool: str
    requests: int
    ok: int  # 2xx (wrk counts status >= 400 as errors; nothing here answers 3xx)
    socket_errors: int
    duration_s: float
    cpu_seconds: float

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0


def load_tool(prefer: str = "auto") -> str:
    """``wrk`` if asked for or found, else ``python``."""
    if prefer == "python":
        return "python"
    if shutil.which("wrk"):
        return "wrk"
    if prefer == "wrk":
        raise RuntimeError("wrk was asked for but is not installed (apt-get install wrk)")
    return "python"


def run_load(spec: LoadSpec, *, tool: str, log_dir: Path) -> LoadResult:
    body_path = log_dir / f"body-{abs(hash(spec.body))}.json"
    body_path.write_bytes(spec.body)
    if tool == "wrk":
        argv = _wrk_argv(spec, body_path, log_dir)
    else:
        argv = [venv_python(), "-m", "funnel_bench.loadgen", "--url", spec.url]
        argv += ["--body-file", str(body_path), "--connections", str(spec.connections)]
        argv += ["--duration", str(spec.duration_s)]
        for name, value in spec.headers.items():
            argv += ["--header", f"{name}: {value}"]
    finished = run_measured(argv, timeout_s=spec.duration_s + 60, log_dir=log_dir)
    lines = [line for line in finished.stdout.splitlines() if line.startswith(MARKER)]
    if finished.returncode != 0 or not lines:
        raise RuntimeError(f"{tool} failed ({finished.returncode}):\n{finished.stdout[-2000:]}")
    totals = json.loads(lines[-1].removeprefix(MARKER))
    return LoadResult(
        tool=tool,
        requests=totals["requests"],
        ok=totals["requests"] - totals["non2xx"] - totals.get("failed", 0),
        socket_errors=totals["socket_errors"],
        duration_s=totals["duration_us"] / 1e6,
        cpu_seconds=finished.cpu_seconds,
    )


def _wrk_argv(spec: LoadSpec, body_path: Path, log_dir: Path) -> list[str]:
    headers = "\n".join(
        f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}"
        for name, value in spec.headers.items()
    )
    script = log_dir / f"wrk-{abs(hash(spec.body))}.lua"
    script.write_text(_LUA.format(body_path=body_path, headers=headers, marker=MARKER))
    duration = max(1, round(spec.duration_s))
    return [
        "wrk",
        "-t1",
        f"-c{spec.connections}",
        f"-d{duration}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        spec.url,
    ]
