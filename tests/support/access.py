"""The tokens every test that reads the read API, the pages or the admin API presents.

Two, as during a rotation: services under test accept both, and clients send
the first. Not secrets (they guard test servers on 127.0.0.1 only).
"""

from __future__ import annotations

from funnel_shared.auth import Access
from pydantic import SecretStr

__all__ = ["AUTH_HEADERS", "TOKEN", "TOKENS", "test_access", "token_env"]

TOKENS = (
    "test-token-one-0123456789abcdefghijklmnop",
    "test-token-two-0123456789abcdefghijklmnop",
)
TOKEN = TOKENS[0]
AUTH_HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def test_access() -> Access:
    """What a service configured with ``TOKENS`` accepts (metrics guarded, the default)."""
    return Access.of([SecretStr(token) for token in TOKENS])


test_access.__test__ = False  # type: ignore[attr-defined]  # not a test, despite its name


def token_env() -> dict[str, str]:
    """The environment that configures both services with ``TOKENS``."""
    value = ",".join(TOKENS)
    return {"STAGE_ENGINE_API_TOKENS": value, "NOTIFIER_API_TOKENS": value}
