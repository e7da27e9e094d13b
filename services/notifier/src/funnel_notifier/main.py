"""``funnel-notifier``: run the notifier, ``migrate`` its database, or ``check`` its rules."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import uvicorn
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="funnel-notifier")
    parser.add_argument(
        "command", nargs="?", choices=["serve", "migrate", "check"], default="serve"
    )
    parser.add_argument(
        "directory", nargs="?", type=Path, help="check: the rules directory to check"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "check":
        settings = NotifierSettings()
        directory = args.directory or settings.rules_dir or builtin_rules_dir()
        sys.exit(check(directory))
    database = DatabaseSettings()
    if args.command == "migrate":
        migrate(database)
        return
    settings = NotifierSettings()
    app = create_app(
        settings=settings, kafka=KafkaSettings(), topics=TopicSettings(), database=database
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    main()
