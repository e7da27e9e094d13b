"""``funnel-stage-engine --help`` and its subcommands' help: what each does and reads."""

from __future__ import annotations

import pytest
from funnel_stage_engine.main import main


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_help_describes_the_worker_its_commands_and_its_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _help(capsys)
    assert out.startswith("usage: funnel-stage-engine")
    assert "faust worker" in out
    assert "migrate" in out and "check" in out
    for name in (
        "STAGE_ENGINE_FUNNELS_DIR",
        "STAGE_ENGINE_APP_ID",
        "KAFKA_BOOTSTRAP_SERVERS",
        "TOPIC_",
        "DATABASE_URL",
    ):
        assert name in out


def test_migrate_help_names_the_version_table(capsys: pytest.CaptureFixture[str]) -> None:
    out = _help(capsys, "migrate")
    assert out.startswith("usage: funnel-stage-engine migrate")
    assert "alembic_version_stage_engine" in out


def test_check_help_takes_an_optional_directory(capsys: pytest.CaptureFixture[str]) -> None:
    out = _help(capsys, "check")
    assert out.startswith("usage: funnel-stage-engine check [-h] [directory]")
    assert "Validate funnel definition files" in out


def test_an_unknown_command_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["frobnicate"])
    assert exited.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err
