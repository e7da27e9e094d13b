"""``funnel-stage-engine``: load and validate the funnels, then run the faust worker.

``funnel-stage-engine check [DIR]`` validates definitions; ``funnel-stage-engine
migrate`` brings the projection's tables in ``DATABASE_URL`` up to date.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import faust
from funnel_shared.kafka import ensure_topics
from funnel_shared.migrations import upgrade
from funnel_shared.settings import DatabaseSettings, KafkaSettings, TopicSettings

from funnel_stage_engine.check import run_check
from funnel_stage_engine.domain.definitions import FunnelDefinitionError, load_funnels
from funnel_stage_engine.settings import StageEngineSettings
from funnel_stage_engine.worker.app import commands_topic_name, create_app

__all__ = ["main", "migrate"]

EX_CONFIG = 78  # sysexits.h: configuration error
MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_stage_engine"


def migrate(database: DatabaseSettings) -> None:
    upgrade(script_location=MIGRATIONS, version_table=VERSION_TABLE, dsn=database.dsn)


def main() -> None:
    if sys.argv[1:2] == ["check"]:
        sys.exit(run_check(sys.argv[2:]))
    if sys.argv[1:2] == ["migrate"]:
        migrate(DatabaseSettings())
        return
    settings = StageEngineSettings()
    try:
        funnels = load_funnels(settings.funnels_dir)
    except FunnelDefinitionError as exc:
        print(f"invalid funnel definitions:\n{exc}", file=sys.stderr)
        sys.exit(EX_CONFIG)
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
    # The worker installs SIGINT/SIGTERM handlers and shuts the app down cleanly.
    worker = faust.Worker(app, loglevel="INFO")
    sys.argv = sys.argv[:1]
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
