import pytest
from funnel_ingest.settings import IngestSettings
from funnel_shared.kafka import consumer_kwargs, producer_kwargs
from funnel_shared.settings import DatabaseSettings, KafkaSettings, TopicSettings


def test_topic_names_default_to_the_contracts() -> None:
    assert TopicSettings().all() == [
        "funnel.contact-events.v1",
        "funnel.stage-changed.v1",
        "funnel.followups.v1",
        "funnel.rejected.v1",
    ]


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("KAFKA_ENABLE_IDEMPOTENCE", "false")
    monkeypatch.setenv("TOPIC_REJECTED", "dead.letters")
    monkeypatch.setenv("INGEST_WRITE_KEYS", '{"website": "wk-1", "app": "wk-2"}')
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u:pw@db:5432/funnel")
    assert KafkaSettings().bootstrap_servers == "k1:9092,k2:9092"
    assert KafkaSettings().enable_idempotence is False
    assert TopicSettings().rejected == "dead.letters"
    ingest = IngestSettings()
    assert (ingest.source_for_key("wk-2"), ingest.source_for_key("nope")) == ("app", None)
    assert DatabaseSettings().dsn == "postgresql://u:pw@db:5432/funnel"


def test_secrets_are_not_shown_in_settings_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_WRITE_KEYS", '{"website": "wk-secret"}')
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2@db/funnel")
    assert "wk-secret" not in repr(IngestSettings())
    assert "hunter2" not in repr(DatabaseSettings())


def test_producer_always_waits_for_all_replicas() -> None:
    kwargs = producer_kwargs(KafkaSettings(enable_idempotence=False), client_id="x")
    assert kwargs["acks"] == "all"
    assert kwargs["enable_idempotence"] is False


def test_consumers_commit_by_hand() -> None:
    kwargs = consumer_kwargs(KafkaSettings(), client_id="x", group_id="g")
    assert kwargs["enable_auto_commit"] is False
    assert kwargs["group_id"] == "g"
