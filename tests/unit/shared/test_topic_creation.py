import pytest
from aiokafka.errors import InvalidReplicationFactorError, TopicAlreadyExistsError
from funnel_shared.kafka import creation_failures
from funnel_shared.settings import KafkaSettings
from funnel_shared.topics import TopicConfigSettings, topic_configs


def test_unset_topic_configs_leave_the_brokers_defaults() -> None:
    assert topic_configs(KafkaSettings(), TopicConfigSettings()) == {}


def test_topic_configs_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("KAFKA_TOPIC_MIN_INSYNC_REPLICAS", "2")
    monkeypatch.setenv("KAFKA_TOPIC_RETENTION_MS", "-1")
    assert topic_configs(KafkaSettings(), TopicConfigSettings()) == {
        "min.insync.replicas": "2",
        "retention.ms": "-1",
    }


def test_more_insync_replicas_than_replicas_is_refused_before_any_topic_exists() -> None:
    with pytest.raises(ValueError, match="every write would fail"):
        topic_configs(
            KafkaSettings(replication_factor=1), TopicConfigSettings(min_insync_replicas=2)
        )


def test_a_topic_another_process_created_first_is_no_failure() -> None:
    errors = [("a", 0, None), ("b", TopicAlreadyExistsError.errno, "Topic 'b' already exists.")]
    assert creation_failures(errors) == []


def test_a_topic_the_broker_refused_is_a_failure_that_says_why() -> None:
    errors = [
        ("a", 0),  # CreateTopics v0 answers carry no message.
        ("b", InvalidReplicationFactorError.errno, "Replication factor: 3 larger than 1."),
    ]
    assert creation_failures(errors) == [
        "b: InvalidReplicationFactorError Replication factor: 3 larger than 1."
    ]
