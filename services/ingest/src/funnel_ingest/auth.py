"""Write keys: the HTTP Basic username (empty password), or ``writeKey`` in the body."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from funnel_ingest.errors import IngestError
from funnel_ingest.settings import IngestSettings

__all__ = ["authenticate", "write_key_from"]


def write_key_from(authorization: str | None, body: Any) -> str | None:
    """The write key a request presents. Basic auth wins over the body, as in Segment."""
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() == "basic" and credentials.strip():
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        username, _, _password = decoded.partition(":")
        return username or None
    key = body.get("writeKey") if isinstance(body, dict) else None
    return key if isinstance(key, str) and key else None


def authenticate(settings: IngestSettings, *, authorization: str | None, body: Any) -> str:
    """The source name for the request's write key, or 401."""
    write_key = write_key_from(authorization, body)
    source = settings.source_for_key(write_key) if write_key else None
    if source is None:
        raise IngestError(
            401,
            "unauthorized",
            "missing or unknown write key: send it as the HTTP Basic username or as writeKey",
            headers={"WWW-Authenticate": 'Basic realm="funnel"'},
        )
    return source
