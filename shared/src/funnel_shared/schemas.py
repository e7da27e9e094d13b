"""JSON Schemas for every record type, generated from the pydantic models.

Regenerate after changing a model::

    uv run python -m funnel_shared.schemas docs/schemas
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from funnel_shared.events import (
    ContactEvent,
    ContactMerged,
    FollowUpEvent,
    FollowUpTask,
    RejectedRecord,
    SegmentMessage,
    StageBlocked,
    StageChanged,
    StageOutput,
    StageStalled,
    TotalChanged,
)

__all__ = ["SCHEMAS", "render_schemas", "write_schemas"]

SCHEMAS: dict[str, Any] = {
    "segment-message": SegmentMessage,
    "contact-event.v1": ContactEvent,
    "stage-changed.v1": StageChanged,
    "stage-blocked.v1": StageBlocked,
    "contact-merged.v1": ContactMerged,
    "stage-stalled.v1": StageStalled,
    "total-changed.v1": TotalChanged,
    "stage-output.v1": StageOutput,
    "rejected.v1": RejectedRecord,
    "followup.v1": FollowUpEvent,
    "followup-task.v1": FollowUpTask,
}


def render_schemas() -> dict[str, str]:
    """File name -> schema text, exactly as stored in the repo."""
    rendered = {}
    for name, model in SCHEMAS.items():
        if isinstance(model, type) and issubclass(model, BaseModel):
            schema = model.model_json_schema(by_alias=True, mode="serialization")
        else:
            schema = TypeAdapter(model).json_schema(by_alias=True, mode="validation")
        schema.setdefault("$id", f"https://funnel.dev/schemas/{name}.json")
        rendered[f"{name}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return rendered


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, text in render_schemas().items():
        path = directory / file_name
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")):
        print(path)
