"""Error answers. The body carries ``code`` and ``message`` as Segment's API does,
so that the Segment SDKs log something useful, plus the per-field ``errors``."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

__all__ = ["ErrorBody", "IngestError", "error_response", "handle_ingest_error"]


class ErrorBody(BaseModel):
    success: bool = False
    code: str
    message: str
    errors: list[str] = []


class IngestError(Exception):
    """A request we refuse, with the status and explanation the client gets."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        errors: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or []
        self.headers = headers or {}


def error_response(error: IngestError) -> JSONResponse:
    body = ErrorBody(code=error.code, message=error.message, errors=error.errors)
    return JSONResponse(body.model_dump(), status_code=error.status, headers=error.headers)


async def handle_ingest_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IngestError)
    return error_response(exc)
