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
    examples_dir: Path = Field(
        default=Path("examples"),
        description="Where `funnel-dev demo <name>` finds the examples (one directory each).",
    )
    broker_port: int = Field(default=9092, description="The embedded broker (Tansu).")
    postgres_port: int = Field(default=55432, description="The embedded PostgreSQL.")
    database: str = Field(default="funnel", description="Database the services use.")
    ingest_port: int = Field(default=8000, description="Ingest.")
    stage_engine_port: int = Field(
        default=8001, description="The stage engine (read API, funnel pages)."
    )
    notifier_port: int = Field(default=8002, description="The notifier.")
    smtp_port: int = Field(
        default=1025,
        description=(
            "The local SMTP sink for the notifier: every mail lands as an .eml file in"
            " data_dir/mail."
        ),
    )
