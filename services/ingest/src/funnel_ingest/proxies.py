"""The client's address, believing ``X-Forwarded-For`` only from trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from pydantic import IPvAnyNetwork

__all__ = ["client_ip"]


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address.strip())
    except ValueError:
        return None


def _trusted(address: str, proxies: Sequence[IPvAnyNetwork]) -> bool:
    parsed = _parse(address)
    return parsed is not None and any(parsed in network for network in proxies)


def client_ip(
    peer: str | None, forwarded_for: Iterable[str], trusted_proxies: Sequence[IPvAnyNetwork]
) -> str | None:
    """The right-most address not set by a trusted proxy.

    Each proxy appends the address it saw, so everything right of the last
    untrusted hop was written by our own proxies; anything further left was
    written by the client and may be forged.
    """
    if peer is None or not trusted_proxies or not _trusted(peer, trusted_proxies):
        return peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]
    nearest = peer
    for hop in reversed(hops):
        if _parse(hop) is None:
            break  # Garbage from here on leftwards: the last good hop is the best we know.
        if not _trusted(hop, trusted_proxies):
            return hop
        nearest = hop
    return nearest
