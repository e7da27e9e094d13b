"""`make bench` in miniature: every benchmark as briefly as it can run, then the report's shape.

Never a timing threshold: the figures are whatever this busy machine gives.
What must hold is that each benchmark ran (or says why it was skipped) and
that both report files are complete.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from funnel_bench.report import REPORT_KEYS

from tests.support.processes import entry_point

RESULT_KEYS = {
    "name",
    "title",
    "unit",
    "figure",
    "baseline",
    "baseline_figure",
    "ratio",
    "target",
    "target_met",
    "status",
    "cpu_seconds",
    "baseline_cpu_seconds",
    "settings",
    "extra",
    "notes",
}
MEASURED = {"ingest.batch", "ingest.single", "stage_engine", "e2e.p50", "e2e.p99"}
MEASURED |= {"memory.rss", "memory.state", "notifier.deliveries", "notifier.delay"}
REPORT = {"report.report.400", "report.report_30d.400", "report.contact.400", "report.page.400"}
REPORT |= {"report.flat", "report.write"}
WITH_BASELINE = {"ingest.batch", "ingest.single", "stage_engine", "notifier.deliveries"}


def test_bench_writes_a_complete_report_for_every_benchmark(
    kafka_env: dict[str, str], postgres_admin_dsn: str, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    # The smallest sizes that still give every figure: half-second phases (wrk rounds up to
    # its 1 s minimum) with at least two progress samples, 50 latencies, 100 contacts.
    argv = [entry_point("funnel-bench"), "--duration", "0.5", "--out", str(out)]
    argv += ["--stage-events", "1000", "--e2e-rate", "50", "--e2e-seconds", "1"]
    argv += ["--memory-contacts", "100"]
    argv += ["--report-contacts", "200,400", "--report-requests", "5", "--report-writes", "150"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env |= {**kafka_env, "DATABASE_URL": postgres_admin_dsn}  # The notifier's server.
    finished = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert finished.returncode == 0, finished.stderr[-4000:]

    report = json.loads((out / "latest.json").read_text())
    assert set(REPORT_KEYS) <= set(report)
    assert {"cpu_model", "cores", "python", "git_commit"} <= set(report["machine"])
    assert {"faust-streaming", "aiokafka", "fastapi", "uvicorn"} <= set(report["versions"])
    results = {result["name"]: result for result in report["results"]}
    for result in results.values():
        assert set(result) >= RESULT_KEYS, result["name"]
    failed = {
        n: r["notes"]
        for n, r in results.items()
        if r["status"] == "failed" or (r["status"] != "ok" and n in MEASURED)
    }
    assert not failed, failed
    assert set(results) >= MEASURED | REPORT
    for name in REPORT:
        assert isinstance(results[name]["figure"], (int, float)), name
        assert results[name]["target_met"] is not None, name
    for name in MEASURED:
        assert isinstance(results[name]["figure"], (int, float)), name
    # The state size is read off a topic, the delay off the receiver: no CPU of their own.
    for name in MEASURED - {"memory.state", "notifier.delay"}:
        assert results[name]["cpu_seconds"], name
    for name in WITH_BASELINE:
        assert results[name]["ratio"] is not None, name
        assert results[name]["baseline_cpu_seconds"], name
    for name in MEASURED:  # Every target can be read, so the report says if it is met.
        assert (results[name]["target"] is None) == (results[name]["target_met"] is None), name
    # py-spy may be refused ptrace in some containers: then the profile says so.
    profiled = {"stage engine", "ingest (single /v1/track)", "notifier (webhook deliveries)"}
    profiled |= {"ingest (100-message /v1/batch)"}
    assert set(report["profiles"]) == profiled
    for profile in report["profiles"].values():
        assert "error" in profile or {"samples", "self", "inclusive", "packages"} <= set(profile)
    assert results["notifier.delay"]["extra"]["samples"], results["notifier.delay"]

    lines = (out / "latest.md").read_text().splitlines()
    header = lines.index(
        "| benchmark | figure | unit | baseline | baseline figure | ratio | target | met | status |"
    )
    table = lines[header : lines.index("", header)]
    rows = [line for line in table if not line.startswith("|---")]
    assert len(rows) == 1 + len(results)  # The header, then one row per result.
    for result in results.values():
        assert any(line.startswith(f"| {result['title']} |") for line in rows), result["title"]
