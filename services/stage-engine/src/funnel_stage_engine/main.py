"""``funnel-stage-engine``: load and validate the funnels, then run the faust worker.

``funnel-stage-engine check [DIR]`` validates definitions; ``funnel-stage-engine
migrate`` brings the projection's tables in ``DATABASE_URL`` up to date. Each
has ``--help``; the command line is built like every service's
(``funnel_shared.cli``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

import faust
from funnel_shared.auth import EX_CONFIG, public_bind_problem
from funnel_shared.cli import Subcommand, command_line
from funnel_shared.kafka import ensure_topics
from funnel_shared.migrations import upgrade
from funnel_shared.settings import DatabaseSettings, KafkaSettings, TopicSettings

from funnel_stage_engine import check
from funnel_stage_engine.domain.definitions import FunnelDefinitionError, load_funnels
from funnel_stage_engine.settings import StageEngineSettings
from funnel_stage_engine.worker.app import commands_topic_name, create_app

__all__ = ["main", "migrate"]

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_stage_engine"

DESCRIPTION = """Run the stage engine: a faust worker that moves contacts through the funnels
(funnel.contact-events.v1 -> funnel.stage-changed.v1), and serves the read API and
the funnel pages over its projection. Configured by environment variables only."""


def migrate(database: DatabaseSettings) -> None:
    upgrade(script_location=MIGRATIONS, version_table=VERSION_TABLE, dsn=database.dsn)


def main(argv: Sequence[str] | None = None) -> None:
    status = command_line(
        prog="funnel-stage-engine",
        description=DESCRIPTION,
        serve=serve,
        subcommands=[
            Subcommand(
                "migrate",
                "Bring the projection's tables in DATABASE_URL up to date (Alembic, version"
                f" table {VERSION_TABLE}).",
                run=lambda _: migrate(DatabaseSettings()),
            ),
            Subcommand(
                "check", check.HELP, run=check.run_from_arguments, arguments=check.arguments
            ),
        ],
        settings=[StageEngineSettings, KafkaSettings, TopicSettings, DatabaseSettings],
        argv=argv,
    )
    raise SystemExit(status)


def serve(_: argparse.Namespace) -> int | None:
    settings = StageEngineSettings()
    problem = public_bind_problem(
        host=settings.host, tokens=settings.api_tokens, tokens_env="STAGE_ENGINE_API_TOKENS"
    )
    if problem:
        print(f"funnel-stage-engine: {problem}", file=sys.stderr)
        return EX_CONFIG
    try:
        funnels = load_funnels(settings.funnels_dir)
    except FunnelDefinitionError as exc:
        print(f"invalid funnel definitions:\n{exc}", file=sys.stderr)
        return EX_CONFIG
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    kafka = KafkaSettings()
    # Explicitly, with the contact-events topic's partition count: a broker that
    # auto-creates topics on first use would pick its own default.
    asyncio.run(ensure_topics(kafka, [commands_topic_name(settings)]))
    app = create_app(
        settings=settings,
        kafka=kafka,
        topics=TopicSettings(),
        funnels=funnels,
        database=DatabaseSettings(),
    )
    # The worker installs SIGINT/SIGTERM handlers and shuts the app down cleanly. It reads
    # sys.argv as faust's own command line: give it none of ours.
    worker = faust.Worker(app, loglevel="INFO")
    sys.argv = sys.argv[:1]
    worker.execute_from_commandline()
    return None


if __name__ == "__main__":
    main()
