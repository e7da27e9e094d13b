"""The stage engine's batch handler over fakes: a dict for the state table and the shared fake
publisher, for unit tests (and the real-broker batch test, which keeps the dict)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from funnel_shared.settings import TopicSettings
from funnel_stage_engine.domain.definitions import load_funnels
from funnel_stage_engine.metrics import StageEngineMetrics
from funnel_stage_engine.worker.handler import ContactEventHandler

from tests.support.fake_publisher import FakePublisher

__all__ = ["COMMANDS", "NOW", "TOPICS", "DictStates", "handler_under_test"]

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TOPICS = TopicSettings()
# The handler's default internal command topic.
COMMANDS = "funnel-stage-engine-contact-commands"


class DictStates:
    """The contact-state table as a dict.

    ``acked_at_store`` holds, per state stored, how many records the publisher
    had acknowledged by then: the handler must store only after every ack.
    """

    def __init__(self, acknowledged: Callable[[], int] = lambda: 0) -> None:
        self.data: dict[str, dict[str, Any]] = {}
        self.acked_at_store: list[int] = []
        self._acknowledged = acknowledged

    def get(self, contact_id: str, *, origin: Any) -> Mapping[str, Any] | None:
        return self.data.get(contact_id)

    def set(self, contact_id: str, state: dict[str, Any], *, origin: Any) -> None:
        self.acked_at_store.append(self._acknowledged())
        self.data[contact_id] = state


def handler_under_test(
    *, fail_with: Exception | None = None, evaluate: Any = None
) -> tuple[ContactEventHandler, DictStates, FakePublisher]:
    """The built-in funnels, a fixed clock; every ack fails with ``fail_with`` when given."""
    publisher = FakePublisher()
    publisher.fail_with = fail_with
    states = DictStates(lambda: len(publisher.sent))
    handler = ContactEventHandler(
        funnels=load_funnels(),
        states=states,
        publisher=publisher,
        topics=TOPICS,
        metrics=StageEngineMetrics(),
        clock=lambda: NOW,
    )
    if evaluate is not None:
        handler.evaluate = evaluate
    return handler, states, publisher
