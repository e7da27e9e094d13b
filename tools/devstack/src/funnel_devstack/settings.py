"""Dev-stack settings. Everything has a default: ``make dev`` needs no configuration."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEV_SOURCE", "DEV_WRITE_KEY", "DevSettings"]

# Documented in the README: the dev stack's one source and its write key.
DEV_SOURCE = "dev"
DEV_WRITE_KEY = "dev-write-key"


class DevSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FUNNEL_DEV_", extra="ignore")

    data_dir: Path = Field(
        default=Path(".funnel-dev"), description="PostgreSQL data, service data and logs."
    )
    broker_port: int = 9092
    postgres_port: int = 55432
    database: str = "funnel"
    ingest_port: int = 8000
    stage_engine_port: int = 8001
    notifier_port: int = 8002
    smtp_port: int = Field(default=1025, description="The local SMTP sink for the notifier.")
