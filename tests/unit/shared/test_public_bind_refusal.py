"""A service without a token serves only on loopback: started on 0.0.0.0, it refuses, saying why.

Real processes (the installed console scripts). The refusal comes before any
broker or database is touched, so these need neither.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.processes import entry_point

SERVICES = [
    ("funnel-stage-engine", "STAGE_ENGINE_"),
    ("funnel-notifier", "NOTIFIER_"),
]


def _run(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_API_TOKENS")}
    return subprocess.run(
        [entry_point(command)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(("command", "prefix"), SERVICES)
def test_a_service_without_a_token_refuses_a_public_bind(command: str, prefix: str) -> None:
    result = _run(command, {f"{prefix}HOST": "0.0.0.0", f"{prefix}PORT": "1"})
    assert result.returncode == 78, result.stderr  # EX_CONFIG
    lines = [line for line in result.stderr.splitlines() if "refusing to listen" in line]
    assert len(lines) == 1, result.stderr
    assert "'0.0.0.0' without a token" in lines[0]
    assert f"{prefix}API_TOKENS" in lines[0] and "127.0.0.1" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("command", "prefix"), SERVICES)
def test_a_too_short_token_stops_the_service_without_showing_it(command: str, prefix: str) -> None:
    secret = "not-long-enough-secret"
    result = _run(command, {f"{prefix}HOST": "0.0.0.0", f"{prefix}API_TOKENS": secret})
    assert result.returncode != 0
    assert "shorter than 32 characters" in result.stderr
    assert secret not in result.stderr + result.stdout
