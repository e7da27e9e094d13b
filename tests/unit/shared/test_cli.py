"""One command style: the bare command serves, tasks are subcommands with --help."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from funnel_shared.cli import Subcommand, command_line
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WIDGET_")

    port: int = Field(default=1, description="Where to listen.")


def _run(argv: list[str], ran: list[str]) -> int:
    def check(args: argparse.Namespace) -> int:
        ran.append(f"check {args.directory}")
        return 1

    return command_line(
        prog="funnel-widget",
        description="Makes widgets.",
        serve=lambda _: ran.append("serve"),
        subcommands=[
            Subcommand("migrate", "Upgrade the database.", lambda _: ran.append("migrate")),
            Subcommand(
                "check",
                "Validate widget files.",
                check,
                lambda parser: parser.add_argument("directory", type=Path),
            ),
        ],
        settings=[_Settings],
        argv=argv,
    )


def test_the_bare_command_serves_and_subcommands_run_with_their_status() -> None:
    ran: list[str] = []
    assert _run([], ran) == 0
    assert _run(["migrate"], ran) == 0
    assert _run(["check", "widgets"], ran) == 1
    assert ran == ["serve", "migrate", "check widgets"]


def test_help_says_what_it_does_and_which_environment_matters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        _run(["--help"], [])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "Makes widgets." in out
    assert "WIDGET_PORT" in out and "Where to listen." in out
    assert "migrate" in out and "Upgrade the database." in out


def test_each_subcommand_has_its_own_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _run(["check", "--help"], [])
    assert "Validate widget files." in capsys.readouterr().out


def test_an_unknown_subcommand_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _run(["launch"], [])
    assert exited.value.code == 2
