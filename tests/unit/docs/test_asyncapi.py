"""docs/asyncapi.yaml against the official AsyncAPI 3.0.0 JSON Schema (vendored, no network)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from funnel_shared.schemas import SCHEMAS
from funnel_shared.settings import TopicSettings

REPO = Path(__file__).resolve().parents[3]
SPEC = REPO / "docs" / "asyncapi-spec" / "asyncapi-3.0.0.schema.json"
DOCUMENT: dict[str, Any] = yaml.safe_load((REPO / "docs" / "asyncapi.yaml").read_text())


def _errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(json.loads(SPEC.read_text()))
    return [error.message for error in validator.iter_errors(document)]


def test_document_follows_the_asyncapi_3_0_0_schema() -> None:
    assert _errors(DOCUMENT) == []


def test_the_check_refuses_another_asyncapi_version() -> None:
    broken = copy.deepcopy(DOCUMENT)
    broken["asyncapi"] = "2.6.0"
    assert _errors(broken)


def test_the_check_refuses_a_channel_with_a_misspelt_field() -> None:
    broken = copy.deepcopy(DOCUMENT)
    channel = broken["channels"]["followups"]
    channel["adress"] = channel.pop("address")
    assert _errors(broken)


def test_the_check_refuses_an_operation_with_an_unknown_action() -> None:
    broken = copy.deepcopy(DOCUMENT)
    next(iter(broken["operations"].values()))["action"] = "publish"
    assert _errors(broken)


def test_channels_are_the_four_topics() -> None:
    addresses = {channel["address"] for channel in DOCUMENT["channels"].values()}
    assert addresses == set(TopicSettings.model_construct().all())


def test_every_payload_is_a_json_schema_file_in_docs_schemas() -> None:
    referenced = set()
    for message in DOCUMENT["components"]["messages"].values():
        target = message["payload"]["$ref"]
        assert (REPO / "docs" / target).is_file(), target
        referenced.add(Path(target).stem)
    assert referenced <= set(SCHEMAS)


def test_every_message_names_its_cloudevents_type() -> None:
    headers = DOCUMENT["components"]["schemas"]["CloudEventsHeaders"]
    assert set(headers["required"]) == {
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_time",
        "content-type",
    }
    for name, message in DOCUMENT["components"]["messages"].items():
        ce_type = message["headers"]["allOf"][1]["properties"]["ce_type"]
        assert ce_type.get("const") or ce_type.get("enum"), name
    stage_changed = DOCUMENT["components"]["messages"]["StageChanged"]
    assert stage_changed["headers"]["allOf"][1]["properties"]["ce_type"]["const"] == (
        "funnel.stage_changed"
    )


def test_the_dead_letter_type_is_the_one_the_code_sends() -> None:
    from funnel_shared.cloudevents import header_map
    from funnel_shared.kafka import rejected_record

    record = rejected_record(service="ingest", origin="t", key=None, original="{", errors=["x"])
    message = DOCUMENT["components"]["messages"]["RejectedRecord"]
    sent = header_map(record.headers)["ce_type"]
    assert message["headers"]["allOf"][1]["properties"]["ce_type"]["const"] == sent
