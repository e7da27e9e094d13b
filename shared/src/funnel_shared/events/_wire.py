"""The wire convention every event shares: ``funnel_shared.camel``'s camelCase."""

from __future__ import annotations

from typing import Any

from funnel_shared.camel import CamelModel

__all__ = ["JsonObject", "Wire"]

JsonObject = dict[str, Any]
Wire = CamelModel
