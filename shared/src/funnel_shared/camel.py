"""The one JSON convention of every HTTP API and event: camelCase on the wire.

Python attributes stay snake_case; the JSON names (and the OpenAPI and JSON
Schema documents) are their camelCase aliases. Either name is accepted on input.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = ["CAMEL_CASE", "CamelModel"]

CAMEL_CASE = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)


class CamelModel(BaseModel):
    """Base of every model that is JSON on the wire (HTTP bodies, Kafka records)."""

    model_config = CAMEL_CASE
