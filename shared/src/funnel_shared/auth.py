"""Access tokens for what shows contact data or changes state: one implementation for every service.

The stage engine's read API and pages and the notifier's admin API (and, by
default, ``/metrics``) require a token when the service is configured with
any. Tokens come from settings as a list (``TokenList``), so that during a
rotation the old and the new one are both accepted. A request presents one:

- ``Authorization: Bearer <token>`` (the APIs, curl, Prometheus);
- or as the HTTP Basic password, any user name (the pages, so a browser can
  open them: it asks for a user and password after the ``Basic`` challenge).

Every configured token is compared, in constant time (``hmac.compare_digest``).
A 401 carries ``WWW-Authenticate: Bearer`` for the APIs and ``Basic`` for the
pages. ``/healthz`` and ``/readyz`` stay open.

A service configured without a token has no authentication at all, so it may
only listen on a loopback address: ``public_bind_problem`` says why it must
not start otherwise, and the services exit with ``EX_CONFIG`` on it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Request
from pydantic import AfterValidator, BeforeValidator, SecretStr
from pydantic_settings import NoDecode

__all__ = [
    "EX_CONFIG",
    "MIN_TOKEN_LENGTH",
    "TOKENS_HELP",
    "Access",
    "TokenList",
    "is_loopback",
    "public_bind_problem",
]

EX_CONFIG = 78  # sysexits.h: configuration error
MIN_TOKEN_LENGTH = 32

TOKENS_HELP = (
    "Comma-separated (or JSON list) tokens that open it, each at least"
    f" {MIN_TOKEN_LENGTH} characters; several are accepted at once, for rotation. Generate"
    " one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'. Sent as"
    " 'Authorization: Bearer <token>' or as the HTTP Basic password. Empty: no"
    " authentication, and the service refuses to listen on anything but a loopback address."
)

Challenge = Literal["Bearer", "Basic"]


def _split(value: Any) -> Any:
    """A JSON list or a comma-separated string, as people write both; blank means none."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _long_enough(tokens: list[SecretStr]) -> list[SecretStr]:
    for index, token in enumerate(tokens):
        if len(token.get_secret_value()) < MIN_TOKEN_LENGTH:
            # Never echo the token: only where it is in the list and how long it must be.
            raise ValueError(
                f"token {index + 1} of {len(tokens)} is shorter than {MIN_TOKEN_LENGTH}"
                " characters: generate a long random one"
            )
    return tokens


# The settings field type: ``api_tokens: TokenList = Field(default_factory=list, ...)``.
TokenList = Annotated[
    list[SecretStr], NoDecode, BeforeValidator(_split), AfterValidator(_long_enough)
]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1) or ``localhost``."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def public_bind_problem(*, host: str, tokens: Sequence[SecretStr], tokens_env: str) -> str | None:
    """Why a service must not start (one line), or None: no token means loopback only."""
    if tokens or is_loopback(host):
        return None
    return (
        f"refusing to listen on {host!r} without a token: anyone who can reach it could read"
        f" contact data; set {tokens_env} (see --help) or listen on 127.0.0.1"
    )


def _presented(request: Request) -> str | None:
    """The token a request presents: the Bearer credentials or the Basic password."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    credentials = credentials.strip()
    if not credentials:
        return None
    if scheme.lower() == "bearer":
        return credentials
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        _user, colon, password = decoded.partition(":")
        return password if colon and password else None
    return None


@dataclass(frozen=True)
class Access:
    """The tokens a service accepts, and the FastAPI dependencies that check them."""

    tokens: tuple[SecretStr, ...] = ()
    metrics_require_token: bool = True

    @classmethod
    def of(cls, tokens: Sequence[SecretStr], *, metrics_require_token: bool = True) -> Access:
        return cls(tuple(tokens), metrics_require_token)

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    def accepts(self, presented: str | None) -> bool:
        """Whether ``presented`` is one of the tokens: each compared in constant time."""
        if presented is None:
            return False
        given = presented.encode("utf-8", "surrogatepass")
        found = False
        for token in self.tokens:  # No early exit: the time does not tell which one matched.
            expected = token.get_secret_value().encode("utf-8", "surrogatepass")
            found |= hmac.compare_digest(expected, given)
        return found

    def require(self, challenge: Challenge) -> Any:
        """A dependency (for ``include_router(dependencies=[...])``) that answers 401 without
        a valid token; the 401's ``WWW-Authenticate`` names ``challenge``."""
        header = 'Basic realm="funnel", charset="UTF-8"' if challenge == "Basic" else "Bearer"

        async def check_token(request: Request) -> None:
            if not self.enabled:
                return
            if not self.accepts(_presented(request)):
                raise HTTPException(
                    401,
                    "missing or invalid token: send 'Authorization: Bearer <token>'"
                    " (pages: the token as the HTTP Basic password)",
                    headers={"WWW-Authenticate": header},
                )

        return Depends(check_token)

    def api(self) -> list[Any]:
        return [self.require("Bearer")]

    def pages(self) -> list[Any]:
        return [self.require("Basic")]

    def metrics(self) -> list[Any]:
        return [self.require("Bearer")] if self.metrics_require_token else []
