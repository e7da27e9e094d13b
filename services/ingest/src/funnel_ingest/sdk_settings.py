"""The settings document analytics.js (``@segment/analytics-next``) loads at start.

The SDK fetches ``{cdnURL}/v1/projects/{writeKey}/settings`` and sends every
event to ``{protocol}://{apiHost}/{t,i,p,s,g,a}`` (or ``/b`` when batching) as
its ``Segment.io`` integration says. Pointing ``cdnURL`` at ingest makes this
document point the SDK back at ingest, with no call to Segment's servers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

__all__ = ["sdk_settings"]


def sdk_settings(*, write_key: str, public_url: str) -> dict[str, Any]:
    """The document for one write key; ``public_url`` is how browsers reach ingest."""
    url = urlsplit(public_url.rstrip("/"))
    protocol = url.scheme or "https"
    api_host = f"{url.netloc}{url.path}/v1"
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": api_host,
                "protocol": protocol,
                "unbundledIntegrations": [],
                "addBundledMetadata": True,
                "maybeBundledConfigIds": {},
            }
        },
        "plan": {
            "track": {"__default": {"enabled": True, "integrations": {}}},
            "identify": {"__default": {"enabled": True}},
            "group": {"__default": {"enabled": True}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        # No SDK telemetry: it would go to Segment's servers.
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }
