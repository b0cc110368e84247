"""The gateway's one error model: every failure becomes {error, message[, details], request_id}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from jorge_runtime.failures import INFRASTRUCTURE_ERRORS
from schemas.errors import ErrorResponse
from schemas.leads import InvalidPhoneError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the API answers on purpose, with its status and machine-readable code."""

    def __init__(self, status: int, error: str, message: str, headers: dict[str, str] | None = None,
                 retry_after: int | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers
        self.retry_after = retry_after


#: Every status the API can answer with the error model; routes document them all.
API_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 404, 409, 413, 415, 422, 429, 500, 503)
}

_HTTP_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def _response(
    request: Request,
    status: int,
    error: str,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    retry_after: int | None = None,
) -> JSONResponse:
    body = ErrorResponse(
        error=error,
        message=message,
        details=details,
        retry_after=retry_after,
        request_id=getattr(request.state, "request_id", None),
    )
    request.state.error_code = error  # the error label of jorge_api_errors_total
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    for err in errors:
        if isinstance(err.get("ctx", {}).get("error"), InvalidPhoneError):
            return _response(
                request,
                400,
                "invalid_phone",
                f"phone is invalid: {err['ctx']['error']}. Send it with its country code, "
                "e.g. +1 909 555 0143.",
            )
        if err["type"] == "json_invalid":
            return _response(request, 400, "invalid_json", "The request body is not valid JSON.")
    details = [{"field": _field(tuple(e["loc"])), "problem": e["msg"]} for e in errors]
    summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details[:3])
    return _response(request, 422, "validation_error", f"The request is invalid: {summary}", details=details)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _response(
        request, exc.status, exc.error, exc.message, headers=exc.headers, retry_after=exc.retry_after
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return _response(request, exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))


async def _dependency_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning("dependency unavailable", extra={"path": request.url.path, "error": type(exc).__name__})
    return _response(
        request,
        503,
        "dependency_unavailable",
        "A service the API depends on is unavailable; nothing was changed, retry shortly.",
        headers={"Retry-After": "5"},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", extra={"path": request.url.path})
    return _response(
        request,
        500,
        "internal_error",
        "Something went wrong on our side; retry later and quote the request_id.",
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception the gateway can raise onto the error model."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Registered per type, so they are answered inside the app instead of by the outermost
    # error middleware, which re-raises to the server and drops the connection.
    for infrastructure_error in INFRASTRUCTURE_ERRORS:
        app.add_exception_handler(infrastructure_error, _dependency_down)
    app.add_exception_handler(Exception, _unexpected)


def documented_errors(**examples: tuple[int, str, str]) -> dict[int | str, dict[str, Any]]:
    """API_ERRORS with named example bodies for the codes a route answers on purpose."""
    responses = {status: dict(spec) for status, spec in API_ERRORS.items()}
    for name, (status, error, message) in examples.items():
        content = responses[status].setdefault("content", {"application/json": {"examples": {}}})
        content["application/json"]["examples"][name] = {"value": {"error": error, "message": message}}
    return responses


BUS_DOWN = (503, "event_bus_unavailable", "The request was not accepted: Kafka is unreachable…")


def bus_unavailable(reason: str) -> ApiError:
    """The 503 of a request refused before anything was written (Kafka known unreachable)."""
    return ApiError(
        503,
        "event_bus_unavailable",
        f"The request was not accepted: {reason}. Nothing was stored; retry shortly.",
        {"Retry-After": "5"},
    )
