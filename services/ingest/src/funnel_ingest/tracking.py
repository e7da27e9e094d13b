"""The Segment tracking routes: single messages, batches, and the analytics.js short paths."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from funnel_shared.events import ContactEvent
from funnel_shared.ids import is_blocked_id
from funnel_shared.kafka import encode_model, rejected_record
from funnel_shared.publishing import OutboundRecord
from pydantic import BaseModel

from funnel_ingest.api_models import Accepted, BatchAccepted, RejectedMessage
from funnel_ingest.auth import authenticate
from funnel_ingest.batch import unpack_batch
from funnel_ingest.body import check_content_type, decode_json, inflate, read_body, too_large
from funnel_ingest.errors import IngestError
from funnel_ingest.openapi import MESSAGE_MODELS, error_responses, request_body
from funnel_ingest.produce import publish_all
from funnel_ingest.proxies import client_ip
from funnel_ingest.services import IngestServices, services_of
from funnel_ingest.settings import IngestSettings
from funnel_ingest.validation import Enrichment, Invalid, check_message, original_text

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["tracking"])
# Compact JSON as pydantic writes it (ensure_ascii=False), built once.
_compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_T = TypeVar("_T")


@dataclass
class _CheckedBatch:
    """A batch's records in order, what its client is told, and why items were refused."""

    records: list[tuple[str, OutboundRecord]] = field(default_factory=list)
    rejected: list[RejectedMessage] = field(default_factory=list)
    events: list[ContactEvent] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)


class _Oversized(Exception):
    """Batch items over the per-message limit (their indexes): the whole batch gets 413."""

    def __init__(self, indexes: list[str]) -> None:
        super().__init__(indexes)
        self.indexes = indexes


# analytics.js posts each call to the first letter of its type, and batches to /b.
SHORT_PATHS = {
    "t": "track",
    "i": "identify",
    "p": "page",
    "s": "screen",
    "g": "group",
    "a": "alias",
}


_READ_HEADERS = frozenset(
    {b"authorization", b"content-type", b"content-length", b"content-encoding"}
)


def _request_headers(request: Request) -> dict[bytes, str]:
    """The headers read here, each as ``request.headers.get(name)`` gives it (the first of
    its name), from one pass over the raw list: each ``get`` walks the whole list."""
    found: dict[bytes, str] = {}
    for name, value in request.scope["headers"]:
        if name in _READ_HEADERS and name not in found:
            found[name] = value.decode("latin-1")
    return found


async def _read_json(request: Request, services: IngestServices) -> tuple[Any, str, int]:
    """The body as JSON, the source its write key belongs to, and the body's size."""
    settings = services.settings
    headers = _request_headers(request)
    authorization = headers.get(b"authorization")
    source = None
    if authorization and authorization.lower().startswith("basic "):
        # Basic auth wins over the body: refuse a wrong key before reading anything.
        source = authenticate(settings, authorization=authorization, body=None)
    check_content_type(headers.get(b"content-type"))
    raw = await read_body(
        request.stream(),
        content_length=headers.get(b"content-length"),
        limit=settings.max_request_bytes,
    )
    content_encoding = headers.get(b"content-encoding")

    def parse() -> Any:
        data = inflate(raw, content_encoding=content_encoding, limit=settings.max_request_bytes)
        return decode_json(data)

    body = await off_the_loop(len(raw), parse, settings=settings)
    if source is None:
        source = authenticate(settings, authorization=authorization, body=body)
    if services.limiter is not None:
        services.limiter.check(source)
    return body, source, len(raw)


async def off_the_loop(size: int, work: Callable[[], _T], *, settings: IngestSettings) -> _T:
    """``work()``, in a worker thread when the body is large (``thread_parse_bytes``), so that
    parsing and validating it never holds up the event loop's other requests."""
    if size < settings.thread_parse_bytes:
        return work()
    return await anyio.to_thread.run_sync(work)


def _enrichment(request: Request, services: IngestServices, source: str) -> Enrichment:
    proxies = services.settings.trusted_proxies
    return Enrichment(
        received_at=datetime.now(UTC),
        source=source,
        source_kind=services.settings.source_kind(source),
        client_ip=client_ip(
            request.client.host if request.client else None,
            # Read only when it can matter: without trusted proxies it is never believed.
            request.headers.getlist("x-forwarded-for") if proxies else [],
            proxies,
        ),
    )


def _event_record(event: ContactEvent, source: str) -> OutboundRecord:
    return encode_model(
        event,
        key=event.contact_key,
        event_id=event.message_id,
        event_type=f"segment.{event.type}",
        source=f"/funnel/ingest/{source}",
        time=event.timestamp,
    )


async def accept_single(message_type: str, request: Request, services: IngestServices) -> str:
    """Accept one message: its messageId once the broker acknowledged it."""
    body, source, size = await _read_json(request, services)
    enrichment = _enrichment(request, services, source)
    outcome = await off_the_loop(
        size,
        lambda: check_message(
            body,
            message_type=message_type,
            max_bytes=services.settings.max_message_bytes,
            enrichment=enrichment,
            limits=services.settings.message_limits,
        ),
        settings=services.settings,
    )
    if isinstance(outcome, Invalid):
        services.metrics.labelled(services.metrics.rejected, outcome.reason).inc()
        if outcome.reason == "too_large":
            raise too_large(outcome.errors[0])
        raise IngestError(400, "invalid_message", "; ".join(outcome.errors), errors=outcome.errors)
    event = outcome.event
    await publish_all(
        services.producer,
        [(services.topics.contact_events, _event_record(event, source))],
        timeout_s=services.settings.produce_timeout_s,
        retry_after_s=services.settings.retry_after_s,
        metrics=services.metrics,
    )
    services.metrics.labelled(services.metrics.accepted, event.type).inc()
    return event.message_id


async def accept_batch(request: Request, services: IngestServices) -> BatchAccepted:
    settings = services.settings
    body, source, size = await _read_json(request, services)
    enrichment = _enrichment(request, services, source)

    origin = f"{request.url.path} ({source})"

    def check_all() -> _CheckedBatch:
        items = unpack_batch(
            body,
            max_messages=settings.max_batch_messages,
            max_merged_bytes=settings.max_batch_merged_bytes,
        )
        # Sizes first, for every item: an oversized one refuses the whole batch (413)
        # before any item is validated.
        oversized = [
            str(index)
            for index, measured in enumerate(items.measured)
            if measured is not None
            and measured.size is not None
            and measured.size > settings.max_message_bytes
        ]
        if oversized:
            raise _Oversized(oversized)
        limits = settings.message_limits
        checked = _CheckedBatch()
        for index, (item, measured) in enumerate(zip(items, items.measured, strict=True)):
            outcome = check_message(
                item,
                max_bytes=settings.max_message_bytes,
                enrichment=enrichment,
                limits=limits,
                measured=measured,
            )
            if isinstance(outcome, Invalid):
                answer, dead_letter = _dead_letter(
                    index, body["batch"][index], outcome, origin=origin
                )
                checked.reasons[outcome.reason] += 1
                checked.rejected.append(answer)
                checked.records.append((services.topics.rejected, dead_letter))
            else:
                checked.events.append(outcome.event)
                checked.records.append(
                    (services.topics.contact_events, _event_record(outcome.event, source))
                )
        return checked

    try:
        checked = await off_the_loop(size, check_all, settings=settings)
    except _Oversized as exc:
        services.metrics.labelled(services.metrics.rejected, "too_large").inc(len(exc.indexes))
        raise too_large(
            f"messages at index {', '.join(exc.indexes[:20])} are over the"
            f" {settings.max_message_bytes} byte limit per message; nothing was accepted"
        ) from None
    records, rejected, events = checked.records, checked.rejected, checked.events
    await publish_all(
        services.producer,
        records,
        timeout_s=settings.produce_timeout_s,
        retry_after_s=settings.retry_after_s,
        metrics=services.metrics,
    )
    metrics = services.metrics
    for kind, count in Counter(event.type for event in events).items():
        metrics.labelled(metrics.accepted, kind).inc(count)
    for reason, count in checked.reasons.items():
        metrics.labelled(metrics.rejected, reason).inc(count)
    return BatchAccepted(accepted=len(events), rejected=rejected)


def _dead_letter(
    index: int, original: Any, outcome: Invalid, *, origin: str
) -> tuple[RejectedMessage, OutboundRecord]:
    """What the client is told about an invalid batch item, and what goes to the rejected topic."""
    message_id = original.get("messageId") if isinstance(original, dict) else None
    answer = RejectedMessage(
        index=index,
        message_id=message_id if isinstance(message_id, str) and _is_text(message_id) else None,
        errors=outcome.errors,
    )
    record = rejected_record(
        service="ingest",
        origin=origin,
        key=_contact_guess(original),
        original=original_text(original),
        errors=outcome.errors,
    )
    return answer, record


def _is_text(value: str) -> bool:
    """False for strings holding lone surrogates, which no UTF-8 answer can carry."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _contact_guess(original: Any) -> str | None:
    """The dead letter's key: the sender's userId, else anonymousId, when they are text."""
    if not isinstance(original, dict):
        return None
    for name in ("userId", "anonymousId"):
        value = original.get(name)
        if isinstance(value, str) and not is_blocked_id(value) and value.isprintable():
            return value
    return None


def _answer(body: BaseModel) -> Response:
    """The 200 answer, serialized here: FastAPI passes a Response through untouched, which
    spares it validating and re-encoding the body. The routes still declare their
    response_model for the OpenAPI document."""
    return Response(body.model_dump_json(), media_type="application/json")


def _accepted_answer(message_id: str) -> Response:
    """``_answer(Accepted(message_id=message_id))``, written directly:
    ``{"success":true,"messageId":...}``."""
    encoded = _compact_json.encode(message_id)
    return Response(f'{{"success":true,"messageId":{encoded}}}', media_type="application/json")


def _single_route(message_type: str) -> Any:
    async def route(request: Request) -> Response:
        return _accepted_answer(await accept_single(message_type, request, services_of(request)))

    route.__name__ = f"post_{message_type}"
    return route


async def _batch_route(request: Request) -> Response:
    return _answer(await accept_batch(request, services_of(request)))


for _type, _model in MESSAGE_MODELS.items():
    router.add_api_route(
        f"/{_type}",
        _single_route(_type),
        methods=["POST"],
        response_model=Accepted,
        responses=error_responses(),
        summary=f"Segment {_type} call",
        description="Answers 200 only after the broker acknowledged the message.",
        openapi_extra=request_body(_model.__name__),
        name=_type,
    )
for _short, _type in SHORT_PATHS.items():
    router.add_api_route(
        f"/{_short}",
        _single_route(_type),
        methods=["POST"],
        response_model=Accepted,
        responses=error_responses(),
        summary=f"Segment {_type} call (analytics.js short path)",
        openapi_extra=request_body(MESSAGE_MODELS[_type].__name__),
        name=f"{_type}_short",
    )
for _path in ("/batch", "/import", "/b"):
    router.add_api_route(
        _path,
        _batch_route,
        methods=["POST"],
        response_model=BatchAccepted,
        responses=error_responses(),
        summary="Segment batch" + (" (alias of /v1/batch)" if _path != "/batch" else ""),
        description=(
            "Valid messages go to the contact-events topic, invalid ones to the rejected"
            " topic; 200 only after the broker acknowledged all of them."
        ),
        openapi_extra=request_body("BatchRequest"),
        name=f"batch{_path.replace('/', '_')}",
    )
