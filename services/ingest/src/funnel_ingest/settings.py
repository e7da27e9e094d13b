"""Ingest settings, from environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["IngestSettings"]


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    write_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description=(
            "JSON object mapping each source name to its write key, e.g."
            ' INGEST_WRITE_KEYS=\'{"website": "wk_live_..."}\'. No keys: every request gets 401.'
        ),
    )
    produce_timeout_s: float = Field(
        default=10.0, gt=0, description="How long to wait for the broker's ack before 503."
    )
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After sent with a 503.")

    def source_for_key(self, write_key: str) -> str | None:
        for source, key in self.write_keys.items():
            if key.get_secret_value() == write_key:
                return source
        return None
