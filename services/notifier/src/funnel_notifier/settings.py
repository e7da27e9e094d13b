"""Notifier settings, from environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["NotifierSettings"]


class NotifierSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8002
    group_id: str = Field(default="funnel-notifier", description="Kafka consumer group.")
    retry_backoff_s: float = Field(
        default=1.0, gt=0, description="Pause before retrying a batch the database refused."
    )
