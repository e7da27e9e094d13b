"""The ingest HTTP tests' set-up: the app over the shared fake publisher, and a client of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.support.fake_publisher import FakePublisher
from tests.support.ingest_fakes import make_app


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def client(publisher: FakePublisher) -> Iterator[TestClient]:
    with TestClient(make_app(publisher)) as test_client:
        yield test_client
