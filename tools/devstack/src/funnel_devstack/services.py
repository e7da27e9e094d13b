"""How to launch each service, and the environment the dev stack gives it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ServiceSpec", "service_specs", "wait_until_ready"]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    argv: list[str]
    port: int
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _entry_point(name: str) -> str:
    # The console scripts live next to the interpreter running the dev stack.
    return str(Path(sys.executable).parent / name)


def service_specs(
    *,
    base_env: dict[str, str],
    ingest_port: int,
    stage_engine_port: int,
    notifier_port: int,
    data_dir: Path,
    write_keys: dict[str, Any],
) -> list[ServiceSpec]:
    """The three services, each with its port and the shared connection settings.

    ``write_keys`` maps each source to its key, or to ``{"key": ..., "kind": "server"}``.

    The dev stack serves on 127.0.0.1 without tokens (a token left in the shell
    does not apply), so the URLs and curl examples it prints work as printed;
    ``base_env`` may still set tokens (the end-to-end tests do).
    """
    no_tokens = {"STAGE_ENGINE_API_TOKENS": "", "NOTIFIER_API_TOKENS": ""}
    env = {**os.environ, **no_tokens, **base_env}
    return [
        ServiceSpec(
            name="ingest",
            argv=[_entry_point("funnel-ingest")],
            port=ingest_port,
            env={
                **env,
                "INGEST_PORT": str(ingest_port),
                "INGEST_WRITE_KEYS": os.environ.get("INGEST_WRITE_KEYS", json.dumps(write_keys)),
            },
        ),
        ServiceSpec(
            name="stage-engine",
            argv=[_entry_point("funnel-stage-engine")],
            port=stage_engine_port,
            env={
                **env,
                "STAGE_ENGINE_PORT": str(stage_engine_port),
                "STAGE_ENGINE_DATA_DIR": str(data_dir / "stage-engine"),
                # The embedded broker forgets its topics on restart; a RocksDB table
                # kept in data_dir would outlive them. Rebuild state from the changelog.
                "STAGE_ENGINE_STORE": os.environ.get("STAGE_ENGINE_STORE", "memory://"),
            },
        ),
        ServiceSpec(
            name="notifier",
            argv=[_entry_point("funnel-notifier")],
            port=notifier_port,
            env={**env, "NOTIFIER_PORT": str(notifier_port)},
        ),
    ]


def wait_until_ready(
    specs: list[ServiceSpec], processes: list[subprocess.Popen[bytes]], timeout_s: float = 120
) -> None:
    """Poll every service's /readyz; fail fast if one exits."""
    deadline = time.monotonic() + timeout_s
    pending = {spec.name: (spec, process) for spec, process in zip(specs, processes, strict=True)}
    while pending and time.monotonic() < deadline:
        for name, (spec, process) in list(pending.items()):
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode} at start-up")
            if _is_ready(spec.url + "/readyz"):
                pending.pop(name)
        time.sleep(0.5)
    if pending:
        raise TimeoutError(f"not ready after {timeout_s:.0f}s: {', '.join(pending)}")


def _is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
