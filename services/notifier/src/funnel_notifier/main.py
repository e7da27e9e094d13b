"""``funnel-notifier``: run the notifier, or ``funnel-notifier migrate`` its database."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import uvicorn
from funnel_shared.migrations import upgrade
from funnel_shared.settings import DatabaseSettings, KafkaSettings, TopicSettings

from funnel_notifier.app import create_app
from funnel_notifier.settings import NotifierSettings

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_notifier"


def migrate(database: DatabaseSettings) -> None:
    upgrade(script_location=MIGRATIONS, version_table=VERSION_TABLE, dsn=database.dsn)


def main() -> None:
    parser = argparse.ArgumentParser(prog="funnel-notifier")
    parser.add_argument("command", nargs="?", choices=["serve", "migrate"], default="serve")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
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
