"""Run a service's Alembic migrations against ``DATABASE_URL``.

Each service owns its tables and keeps its own version table, so services
migrate independently.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

__all__ = ["run_env_online", "upgrade"]


def upgrade(*, script_location: Path, version_table: str, dsn: str, revision: str = "head") -> None:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    # The env.py scripts read these; SQLAlchemy reaches PostgreSQL through asyncpg.
    config.attributes["dsn"] = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    config.attributes["version_table"] = version_table
    command.upgrade(config, revision)


def run_env_online() -> None:
    """Body of every service's ``migrations/env.py``: migrate over an async engine."""
    import asyncio

    from alembic import context
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    config = context.config
    version_table = config.attributes["version_table"]

    def migrate(connection: Connection) -> None:
        context.configure(connection=connection, version_table=version_table)
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(config.attributes["dsn"], poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(migrate)
                await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())
