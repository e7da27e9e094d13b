"""``funnel-dev``, the README's run command: it comes up on embedded defaults,
carries an event end to end, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
from funnel_devstack.processes import free_port, stop_process
from funnel_devstack.settings import DEV_WRITE_KEY

pytestmark = pytest.mark.e2e


class OutputWatcher:
    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        self._process = process
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for raw in iter(self._process.stdout.readline, b""):
            self.lines.append(raw.decode("utf-8", "replace"))

    def wait_for(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self._process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{text!r} not printed; output:\n{''.join(self.lines)[-5000:]}")


async def _stored_contacts(dsn: str, contact: str, timeout_s: float) -> int:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        connection = await asyncpg.connect(dsn)
        try:
            count = await connection.fetchval(
                "SELECT count(*) FROM received_stage_changes WHERE contact_id = $1", contact
            )
        finally:
            await connection.close()
        if count:
            return int(count)
        await asyncio.sleep(0.25)
    return 0


def test_dev_stack_runs_an_event_end_to_end_and_ctrl_c_stops_every_child(
    tmp_path: Path,
) -> None:
    ports = {
        name: free_port()
        for name in ("BROKER", "POSTGRES", "INGEST", "STAGE_ENGINE", "NOTIFIER", "SMTP")
    }
    env = {
        name: value
        for name, value in os.environ.items()
        # The point is the embedded defaults: drop anything that points elsewhere.
        if not name.startswith(("KAFKA_", "TOPIC_", "INGEST_", "STAGE_ENGINE_", "NOTIFIER_"))
        and name != "DATABASE_URL"
    }
    env.update({f"FUNNEL_DEV_{name}_PORT": str(port) for name, port in ports.items()})
    env["FUNNEL_DEV_DATA_DIR"] = str(tmp_path / "dev")
    dev = subprocess.Popen(
        [str(Path(sys.executable).parent / "funnel-dev")],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output = OutputWatcher(dev)
    children: list[psutil.Process] = []
    try:
        output.wait_for("Funnel is up.", timeout_s=180)
        children = psutil.Process(dev.pid).children(recursive=True)
        assert len(children) >= 5  # broker, postgres (and its workers), three services

        contact = "dev-stack-user"
        response = httpx.post(
            f"http://127.0.0.1:{ports['INGEST']}/v1/track",
            json={
                "userId": contact,
                "event": "Signed Up",
                "context": {"traits": {"email": "dev@example.com"}},
            },
            auth=(DEV_WRITE_KEY, ""),
        )
        assert response.status_code == 200, response.text
        dsn = f"postgresql://postgres@127.0.0.1:{ports['POSTGRES']}/funnel"
        stored = asyncio.run(_stored_contacts(dsn, contact, timeout_s=90))
        assert stored == 1, "".join(output.lines)
        # The welcome follow-up reaches the dev stack's SMTP sink as an .eml file.
        mail_dir = tmp_path / "dev" / "mail"
        deadline = time.monotonic() + 60
        while not list(mail_dir.glob("*.eml")) and time.monotonic() < deadline:
            time.sleep(0.25)
        [mail] = list(mail_dir.glob("*.eml"))
        assert b"To: dev@example.com" in mail.read_bytes(), "".join(output.lines)

        # The demo journeys reach the funnel page through the whole stack.
        demo = subprocess.run(
            [str(Path(sys.executable).parent / "funnel-dev"), "demo"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        # The sign-up above is one more visitor and lead (a lead has passed "visitor").
        assert "reached per stage (all time): [11, 7, 3, 1, 0, 0]" in demo.stdout, demo.stdout
        page = httpx.get(f"http://127.0.0.1:{ports['STAGE_ENGINE']}/funnels/lifecycle")
        assert page.status_code == 200
        assert page.text.count('class="bar"') == 6

        dev.send_signal(signal.SIGINT)
        assert dev.wait(timeout=60) == 0
    finally:
        stop_process(dev, timeout_s=5)
        assert dev.stdout is not None
        dev.stdout.close()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], f"left behind: {[(p.pid, p.name()) for p in alive]}"
    assert "funnel-dev: stopping broker" in "".join(output.lines)
