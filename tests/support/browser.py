"""Debian's chromium, driven over the DevTools protocol by playwright (no browser download).

``make browser`` (a prerequisite of ``make test``) installs it with apt-get. A
missing browser fails the test with that hint: never a silent skip.
"""

from __future__ import annotations

import shutil

import pytest

# The flags the closed network needs: anything that phones home is refused and logs errors.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_executable() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "chromium is not installed: run `make browser` (apt-get install chromium),"
            " which `make test` does first"
        )
    return path
