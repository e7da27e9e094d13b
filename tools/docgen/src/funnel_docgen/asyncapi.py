"""docs/asyncapi.yaml: the four topics as an AsyncAPI 3.0.0 document.

Built from the event models (``funnel_shared.schemas.SCHEMAS`` names their
JSON Schema files in docs/schemas/) and the topic settings' defaults. Values
are JSON; every record carries the CloudEvents Kafka binding's headers
(binary mode), and each message says which ``ce_type`` it carries.
"""

from __future__ import annotations

import typing
from typing import Any

import yaml
from funnel_shared.events import ContactEvent, StageOutput
from funnel_shared.schemas import SCHEMAS
from funnel_shared.settings import TopicSettings
from pydantic import BaseModel

__all__ = ["asyncapi_document", "render_asyncapi"]

KAFKA_BINDING_VERSION = "0.5.0"

# ce_type values set where the records are encoded: the stage engine's outputs are
# "funnel.<kind>", ingest's contact events "segment.<type>"; these two are fixed strings
# in funnel_notifier's outbox and funnel_shared.kafka.rejected_record.
FOLLOWUP_CE_TYPE = "funnel.followup"
REJECTED_CE_TYPE = "funnel.rejected.v1"

CLOUDEVENTS_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": (
        "CloudEvents 1.0, Kafka protocol binding, binary mode: the event's attributes as"
        " record headers (UTF-8 strings), the value is the JSON data."
    ),
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {
            "type": "string",
            "description": "The record's id (the value's `id`, or the messageId of a contact"
            " event): deterministic, so a re-published record keeps it. Consumers dedupe on it.",
        },
        "ce_source": {
            "type": "string",
            "description": "Who published it: /funnel/ingest/<source name>,"
            " /funnel/stage-engine, /funnel/notifier.",
        },
        "ce_type": {"type": "string", "description": "What the value is; see each message."},
        "ce_time": {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601: the event's time (contact events), the processing time"
            " (stage outputs), when it happened (follow-ups) or was rejected (dead letters).",
        },
        "content-type": {"type": "string", "const": "application/json"},
    },
}


def _schema_file(model: Any) -> str:
    for name, candidate in SCHEMAS.items():
        if candidate is model:
            return f"./schemas/{name}.json"
    raise KeyError(f"{model} has no JSON Schema in funnel_shared.schemas.SCHEMAS")


def _literal_values(model: type[BaseModel], field: str) -> list[str]:
    info = model.model_fields[field]
    values = typing.get_args(info.annotation) or (info.default,)
    return [str(value) for value in values]


def _message(
    name: str, model: Any, *, title: str, ce_types: list[str], key: str, summary: str
) -> dict[str, Any]:
    ce_type: dict[str, Any] = (
        {"type": "string", "const": ce_types[0]}
        if len(ce_types) == 1
        else {"type": "string", "enum": ce_types}
    )
    return {
        "name": name,
        "title": title,
        "summary": summary,
        "contentType": "application/json",
        "headers": {
            "allOf": [
                {"$ref": "#/components/schemas/CloudEventsHeaders"},
                {"type": "object", "properties": {"ce_type": ce_type}},
            ]
        },
        "payload": {"$ref": _schema_file(model)},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": key},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _messages() -> dict[str, dict[str, Any]]:
    contact_key = "The contact id: userId, else anonymousId."
    messages = {
        "ContactEvent": _message(
            "ContactEvent",
            ContactEvent,
            title="Contact event",
            ce_types=[f"segment.{kind}" for kind in _literal_values(ContactEvent, "type")],
            key=contact_key,
            summary="A Segment message as ingest accepted and enriched it.",
        )
    }
    summaries = {
        "stage_changed": "A contact moved to another stage of a funnel.",
        "stage_blocked": "A strict funnel refused a skip; the contact stays.",
        "contact_merged": "An anonymous contact was merged into an identified one.",
        "stage_stalled": "A contact stayed in a stage longer than its funnel allows.",
        "total_changed": (
            "A summed rule's running total for a contact changed (consumers that do not"
            " need totals ignore it)."
        ),
    }
    for model in typing.get_args(typing.get_args(StageOutput)[0]):
        kind = _literal_values(model, "kind")[0]
        messages[model.__name__] = _message(
            model.__name__,
            model,
            title=kind.replace("_", " ").capitalize(),
            ce_types=[f"funnel.{kind}"],
            key="The contact id (for a merge, the identified contact).",
            summary=summaries.get(kind, kind) + f" Told apart by `kind: {kind}`.",
        )
    messages["FollowUpEvent"] = _message(
        "FollowUpEvent",
        SCHEMAS["followup.v1"],
        title="Follow-up event",
        ce_types=[FOLLOWUP_CE_TYPE],
        key="The contact id.",
        summary="A follow-up changed state: scheduled, failed (an attempt), sent, dead or"
        " cancelled.",
    )
    messages["RejectedRecord"] = _message(
        "RejectedRecord",
        SCHEMAS["rejected.v1"],
        title="Rejected record",
        ce_types=[REJECTED_CE_TYPE],
        key="The original record's key, else the dead letter's own id.",
        summary="A dead letter: the original record (as text), who rejected it, and why.",
    )
    return messages


def _channel(address: str, description: str, messages: list[str]) -> dict[str, Any]:
    return {
        "address": address,
        "description": description,
        "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
    }


def _operation(
    action: str, channel: str, messages: list[str], who: str, summary: str
) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "tags": [{"name": who}],
        "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in messages],
    }


def asyncapi_document() -> dict[str, Any]:
    topics = {name: info.default for name, info in TopicSettings.model_fields.items()}
    descriptions = {
        name: info.description or "" for name, info in TopicSettings.model_fields.items()
    }
    messages = _messages()
    outputs = [name for name in messages if name not in {"ContactEvent", "FollowUpEvent"}]
    outputs.remove("RejectedRecord")
    channels = {
        "contactEvents": _channel(
            topics["contact_events"], descriptions["contact_events"], ["ContactEvent"]
        ),
        "stageChanged": _channel(topics["stage_changed"], descriptions["stage_changed"], outputs),
        "followups": _channel(topics["followups"], descriptions["followups"], ["FollowUpEvent"]),
        "rejected": _channel(topics["rejected"], descriptions["rejected"], ["RejectedRecord"]),
    }
    operations = {
        "ingestSendsContactEvents": _operation(
            "send",
            "contactEvents",
            ["ContactEvent"],
            "ingest",
            "Ingest publishes every accepted message (acks=all) before it answers 2xx.",
        ),
        "stageEngineReceivesContactEvents": _operation(
            "receive",
            "contactEvents",
            ["ContactEvent"],
            "stage-engine",
            "The stage engine's faust worker evaluates each event against every funnel.",
        ),
        "stageEngineSendsStageOutputs": _operation(
            "send",
            "stageChanged",
            outputs,
            "stage-engine",
            "The stage engine publishes each output (deterministic id) before it stores the"
            " contact's state.",
        ),
        "projectionReceivesStageOutputs": _operation(
            "receive",
            "stageChanged",
            outputs,
            "stage-engine",
            "The stage engine's projection stores them in PostgreSQL for the read API and"
            " the funnel pages (consumer group <app id>-projection).",
        ),
        "notifierReceivesStageOutputs": _operation(
            "receive",
            "stageChanged",
            outputs,
            "notifier",
            "The notifier matches them against the follow-up rules (consumer group"
            " NOTIFIER_GROUP_ID); kinds no rule acts on are skipped.",
        ),
        "notifierSendsFollowUpEvents": _operation(
            "send",
            "followups",
            ["FollowUpEvent"],
            "notifier",
            "Published in order from the notifier's outbox table.",
        ),
        "servicesSendRejectedRecords": _operation(
            "send",
            "rejected",
            ["RejectedRecord"],
            "ingest, stage-engine, notifier",
            "Ingest (invalid batch items), the stage engine (undecodable events, failed"
            " evaluations, refused links) and the notifier (records that do not validate).",
        ),
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Funnel topics",
            "version": "1.0.0",
            "description": (
                "The Kafka topics of Funnel. Generated by `make docs` from the event models"
                " and the topic settings' defaults (TOPIC_* variables rename them): do not"
                " edit. Values are camelCase JSON, described by the JSON Schemas in"
                " schemas/. Additions are backward compatible; a breaking change gets a new"
                " .vN topic."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": {"CloudEventsHeaders": CLOUDEVENTS_HEADERS},
            "messages": messages,
        },
    }


def render_asyncapi() -> str:
    text = yaml.safe_dump(asyncapi_document(), sort_keys=False, allow_unicode=True, width=100)
    return "# Generated by `make docs` (funnel-docgen): do not edit.\n" + text
