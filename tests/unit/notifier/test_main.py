"""``funnel-notifier --help``, and each subcommand's, say what it does and what matters."""

from __future__ import annotations

from pathlib import Path

import pytest
from funnel_notifier.main import main


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_help_describes_the_service_its_commands_and_its_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _help([], capsys)
    assert "Run the follow-ups" in out
    for command in ("serve", "migrate", "check"):
        assert command in out
    for name in ("NOTIFIER_RULES_DIR", "NOTIFIER_PORT", "DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        assert name in out


def test_migrate_help_says_it_upgrades_the_tables(capsys: pytest.CaptureFixture[str]) -> None:
    out = _help(["migrate"], capsys)
    assert out.startswith("usage: funnel-notifier migrate")
    assert "Upgrade the notifier's tables" in out


def test_check_help_names_its_optional_directory(capsys: pytest.CaptureFixture[str]) -> None:
    out = _help(["check"], capsys)
    assert out.startswith("usage: funnel-notifier check [-h] [directory]")
    assert "Exit status 1 for an invalid file or template" in out
    assert "NOTIFIER_RULES_DIR" in out


def test_serve_help_says_it_is_the_bare_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert "the same as no command" in _help(["serve"], capsys)


def test_check_exits_with_its_status_for_a_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["check", str(tmp_path / "missing")])
    assert exited.value.code == 1
    assert "not a directory" in capsys.readouterr().err
