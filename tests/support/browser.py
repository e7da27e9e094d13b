"""Debian's chromium, driven over the DevTools protocol by playwright (no browser download).

``make browser`` (a prerequisite of ``make test``) installs it with apt-get. A
missing browser fails the test with that hint: never a silent skip.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from playwright.async_api import ConsoleMessage, Page, async_playwright

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


@asynccontextmanager
async def signed_in_page(password: str) -> AsyncIterator[tuple[Page, list[str]]]:
    """A chromium page that answers the pages' Basic challenge with ``password`` (as a
    person would type the token), and the list its console errors and warnings and
    page errors land in: a test asserts it is empty at the end."""
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"console {message.type}: {message.text}")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_executable(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context(
                http_credentials={"username": "me", "password": password}
            )
            page = await context.new_page()
            page.on("console", on_console)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            yield page, problems
        finally:
            await browser.close()
