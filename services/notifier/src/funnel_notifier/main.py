"""``funnel-notifier``: run the notifier, ``migrate`` its database, or ``check`` its rules."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from funnel_shared.auth import EX_CONFIG, public_bind_problem
from funnel_shared.cli import Subcommand, command_line
from funnel_shared.migrations import upgrade
from funnel_shared.settings import DatabaseSettings, KafkaSettings, TopicSettings

from funnel_notifier.actions import Resources, resolve_rules
from funnel_notifier.app import create_app
from funnel_notifier.domain.rules import RuleFileError, builtin_rules_dir, load_rules
from funnel_notifier.settings import NotifierSettings

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_notifier"


def migrate(database: DatabaseSettings) -> None:
    upgrade(script_location=MIGRATIONS, version_table=VERSION_TABLE, dsn=database.dsn)


def check(directory: Path) -> int:
    """Validate rule files and templates; report rules the environment leaves disabled.

    Exit status 1 for an invalid file or template, else 0.
    """
    try:
        loaded = load_rules(directory)
        active = resolve_rules(
            loaded, env=os.environ, resources=Resources(templates_dir=directory / "templates")
        )
    except RuleFileError as exc:
        print(exc, file=sys.stderr)
        return 1
    for item in loaded:
        why = active.disabled.get(item.rule.id)
        rule = item.rule
        where = f"{item.funnel}/{rule.stage}" if rule.stage else item.funnel
        state = f"DISABLED: {why}" if why else "ok"
        print(f"{item.rule.id}: {rule.trigger} {where} -> {rule.action.type}: {state}")
    print(f"{len(loaded)} rule(s) in {directory}, {len(active.disabled)} disabled")
    return 0


DESCRIPTION = """Run the follow-ups: read stage changes, store one follow-up per matching rule,
and deliver them (webhooks, e-mail, Kafka tasks) with retries; serves the admin API.
Configured by environment variables only."""


def main(argv: Sequence[str] | None = None) -> None:
    status = command_line(
        prog="funnel-notifier",
        description=DESCRIPTION,
        serve=serve,
        subcommands=[
            # The bare command serves; ``serve`` is kept for callers that name it.
            Subcommand("serve", "Serve (the same as no command).", serve),
            Subcommand(
                "migrate",
                "Upgrade the notifier's tables to the latest version (Alembic).",
                _migrate,
            ),
            Subcommand(
                "check",
                "Validate the follow-up rules and templates; list rules the environment"
                " leaves disabled. Exit status 1 for an invalid file or template.",
                _check,
                _check_arguments,
            ),
        ],
        settings=[NotifierSettings, DatabaseSettings, KafkaSettings, TopicSettings],
        argv=argv,
    )
    raise SystemExit(status)


log = logging.getLogger("funnel.notifier")


def serve(_: argparse.Namespace) -> int | None:
    _log_to_stderr()
    settings = NotifierSettings()
    problem = public_bind_problem(
        host=settings.host, tokens=settings.api_tokens, tokens_env="NOTIFIER_API_TOKENS"
    )
    if problem:
        log.error(problem)
        return EX_CONFIG
    app = create_app(
        settings=settings,
        kafka=KafkaSettings(),
        topics=TopicSettings(),
        database=DatabaseSettings(),
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    return None


def _migrate(_: argparse.Namespace) -> None:
    _log_to_stderr()
    migrate(DatabaseSettings())


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "directory",
        nargs="?",
        type=Path,
        help="the rules directory (default: NOTIFIER_RULES_DIR, else the built-in rules)",
    )


def _check(args: argparse.Namespace) -> int:
    _log_to_stderr()
    directory = args.directory or NotifierSettings().rules_dir or builtin_rules_dir()
    return check(directory)


def _log_to_stderr() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


if __name__ == "__main__":
    main()
