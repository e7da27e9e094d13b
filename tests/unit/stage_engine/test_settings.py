from pathlib import Path

import pytest
from funnel_stage_engine.settings import StageEngineSettings
from pydantic import ValidationError


def test_stage_engine_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGE_ENGINE_FUNNELS_DIR", "/etc/funnels")
    monkeypatch.setenv("STAGE_ENGINE_STORE", "memory://")
    monkeypatch.setenv("STAGE_ENGINE_COMMIT_INTERVAL_S", "0.5")
    settings = StageEngineSettings()
    assert (settings.funnels_dir, settings.store, settings.commit_interval_s) == (
        Path("/etc/funnels"),
        "memory://",
        0.5,
    )


def test_the_stage_engine_defaults_to_built_in_funnels_and_rocksdb(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STAGE_ENGINE_FUNNELS_DIR", raising=False)
    monkeypatch.delenv("STAGE_ENGINE_STORE", raising=False)
    settings = StageEngineSettings()
    assert (settings.funnels_dir, settings.store) == (None, "rocksdb://")


def test_an_unknown_table_store_is_refused() -> None:
    with pytest.raises(ValidationError, match="rocksdb://"):
        StageEngineSettings(store="redis://localhost")
