"""``funnel-ingest --help`` says what it serves and which environment variables matter."""

from __future__ import annotations

import pytest
from funnel_ingest.main import main


def test_help_describes_the_service_and_its_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "Segment-compatible tracking API" in out
    for name in ("INGEST_WRITE_KEYS", "INGEST_PORT", "KAFKA_BOOTSTRAP_SERVERS", "TOPIC_"):
        assert name in out
