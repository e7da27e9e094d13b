"""The ingest HTTP app: Segment-compatible routes that answer only after Kafka's ack."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from funnel_shared.events import SegmentMessage
from funnel_shared.kafka import (
    AiokafkaPublisher,
    Publisher,
    encode_model,
    producer_kwargs,
    publish,
)
from funnel_shared.settings import KafkaSettings, TopicSettings
from pydantic import TypeAdapter, ValidationError

from funnel_ingest.normalize import normalize
from funnel_ingest.settings import IngestSettings

__all__ = ["create_app"]

log = logging.getLogger("funnel.ingest")

MESSAGE_TYPES = ("track", "identify", "page", "screen", "group", "alias")
_message_adapter: TypeAdapter[Any] = TypeAdapter(SegmentMessage)


class BrokerUnavailable(Exception):
    """The broker did not acknowledge in time: the client must retry."""


def create_app(
    *,
    settings: IngestSettings,
    kafka: KafkaSettings,
    topics: TopicSettings,
    publisher: Publisher | None = None,
) -> FastAPI:
    """Composition root. Tests pass a fake ``publisher``; production builds aiokafka's."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if publisher is not None:
            app.state.publisher = publisher
            yield
            return
        producer = AIOKafkaProducer(**producer_kwargs(kafka, client_id="ingest"))
        # Start lazily-tolerant: a broker that is down at boot must not stop the
        # process, /readyz reports it and requests get 503 until it is back.
        app.state.producer = producer
        app.state.publisher = AiokafkaPublisher(producer)
        app.state.producer_started = False
        try:
            await _start_producer(app)
        except KafkaError:
            log.warning("broker not reachable at start-up; will retry on demand")
        try:
            yield
        finally:
            await producer.stop()

    app = FastAPI(title="Funnel ingest", version="0.1.0", lifespan=lifespan)

    async def get_publisher(request: Request) -> Publisher:
        if publisher is None and not request.app.state.producer_started:
            try:
                await _start_producer(request.app)
            except KafkaError as exc:
                raise BrokerUnavailable from exc
        return request.app.state.publisher  # type: ignore[no-any-return]

    def get_source(request: Request, body: dict[str, Any]) -> str:
        write_key = _write_key(request, body)
        source = settings.source_for_key(write_key) if write_key else None
        if source is None:
            raise HTTPException(
                status_code=401,
                detail="missing or unknown write key",
                headers={"WWW-Authenticate": 'Basic realm="funnel"'},
            )
        return source

    @app.exception_handler(BrokerUnavailable)
    async def broker_unavailable(_: Request, exc: BrokerUnavailable) -> JSONResponse:
        return JSONResponse(
            status_code=503,
            content={"success": False, "error": "broker unavailable, retry later"},
            headers={"Retry-After": str(settings.retry_after_s)},
        )

    async def accept_one(message_type: str, request: Request) -> dict[str, Any]:
        received_at = datetime.now(UTC)
        body = await _json_body(request)
        source = get_source(request, body)
        body.pop("writeKey", None)
        body["type"] = message_type
        try:
            message = _message_adapter.validate_python(body)
        except ValidationError as exc:
            errors = [_describe(error) for error in exc.errors()]
            raise HTTPException(status_code=400, detail={"errors": errors}) from exc
        event = normalize(
            message,
            received_at=received_at,
            source=source,
            client_ip=request.client.host if request.client else None,
        )
        target = await get_publisher(request)
        try:
            await asyncio.wait_for(
                publish(
                    target,
                    topics.contact_events,
                    encode_model(
                        event,
                        key=event.contact_key,
                        event_id=event.message_id,
                        event_type=f"segment.{event.type}",
                        source=f"/funnel/ingest/{source}",
                        time=event.timestamp,
                    ),
                ),
                timeout=settings.produce_timeout_s,
            )
        except (KafkaError, TimeoutError) as exc:
            log.warning("produce failed: %s", exc)
            raise BrokerUnavailable from exc
        return {"success": True, "messageId": event.message_id}

    for message_type in MESSAGE_TYPES:
        app.add_api_route(
            f"/v1/{message_type}",
            _route_for(message_type, accept_one),
            methods=["POST"],
            summary=f"Segment {message_type} call",
            name=message_type,
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        if publisher is not None:
            return JSONResponse({"status": "ready"})
        producer: AIOKafkaProducer = request.app.state.producer
        try:
            if not request.app.state.producer_started:
                await _start_producer(request.app)
            await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout=5)
        except (KafkaError, TimeoutError):
            return JSONResponse({"status": "broker unreachable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    return app


def _route_for(
    message_type: str, handler: Callable[[str, Request], Awaitable[dict[str, Any]]]
) -> Callable[[Request], Awaitable[dict[str, Any]]]:
    async def route(request: Request) -> dict[str, Any]:
        return await handler(message_type, request)

    route.__name__ = f"post_{message_type}"
    return route


async def _start_producer(app: FastAPI) -> None:
    await app.state.producer.start()
    app.state.producer_started = True


async def _json_body(request: Request) -> dict[str, Any]:
    # Browsers send text/plain to avoid a CORS preflight; the body is JSON either way.
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPException(status_code=400, detail=f"malformed JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise HTTPException(status_code=400, detail="the body must be a JSON object")
    return body


def _write_key(request: Request, body: dict[str, Any]) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "basic" and credentials:
        try:
            username, _, _password = base64.b64decode(credentials).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return username or None
    key = body.get("writeKey")
    return key if isinstance(key, str) and key else None


def _describe(error: Any) -> str:
    location = ".".join(str(part) for part in error["loc"] if part not in MESSAGE_TYPES)
    return f"{location}: {error['msg']}" if location else str(error["msg"])
