"""The stage engine's faust agent in faust's test context (unit tests)."""

from __future__ import annotations

from typing import Any

from funnel_stage_engine.worker.app import StageEngineApp

__all__ = ["acknowledge_table_writes"]


def acknowledge_table_writes(app: StageEngineApp) -> None:
    """Faust's test context starts no producer, so no changelog record is ever sent or
    acknowledged, and the agent (which awaits its states' acks) would wait for them.
    Here each changelog record counts as acknowledged as soon as it is handed over."""
    table: Any = app.contact_to_state
    send = table.send_changelog

    def send_and_acknowledge(*args: Any, **kwargs: Any) -> Any:
        future = send(*args, **kwargs)
        if not future.done():
            future.set_result(None)
        return future

    table.send_changelog = send_and_acknowledge
