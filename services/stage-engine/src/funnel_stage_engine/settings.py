"""Stage-engine settings, from environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["StageEngineSettings"]


class StageEngineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STAGE_ENGINE_", extra="ignore")

    app_id: str = Field(
        default="funnel-stage-engine",
        description="Faust app id: the consumer group and the prefix of its internal topics.",
    )
    host: str = "127.0.0.1"
    port: int = 8001
    data_dir: Path = Field(
        default=Path(".funnel-data/stage-engine"), description="Faust's local data directory."
    )
