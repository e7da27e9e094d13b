"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, keyed
with the bytes of a ``whsec_<base64>`` secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

__all__ = ["SECRET_PREFIX", "decode_secret", "sign", "signature_headers"]

SECRET_PREFIX = "whsec_"


def decode_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_`` secret. Never echoes the secret in errors."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("the secret must have the form whsec_<base64>")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("the secret after whsec_ is not valid base64") from None
    if len(key) < 16:
        raise ValueError("the secret is too short (at least 16 bytes)")
    return key


def sign(*, key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    *, key: bytes, webhook_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key=key, webhook_id=webhook_id, timestamp=timestamp, body=body),
    }
