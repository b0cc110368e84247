"""The gateway's HTTP metrics (jorge_api_*) and its /metrics endpoint.

Labels are the route TEMPLATE (``/v1/leads/{lead_id}/qualification``), never the raw path, so
lead ids never become series; a request no route matched (or refused before routing, like a
413) is ``unmatched``. Only API traffic (``/v1/...``) is counted: probes and scrapes would
otherwise make up the throughput.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jorge_runtime.observability.metrics import API_DURATION, API_ERRORS, API_REQUESTS
from jorge_runtime.observability.process_metrics import metrics_asgi_app

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
# Answers that are the caller's to fix and that the API gives on purpose under normal load:
# bad credentials and rate limits. Every other 4xx, and every 5xx, counts as an error.
_NOT_ERRORS = frozenset({401, 403, 429})
UNMATCHED = "unmatched"


def is_error(status: int) -> bool:
    """Whether a status counts in jorge_api_errors_total."""
    return status >= 500 or (400 <= status < 500 and status not in _NOT_ERRORS)


def route_template(scope: Scope) -> str:
    """The template of the route that handled the request (set by Starlette's router)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class HttpMetricsMiddleware:
    """Plain ASGI: counts and times each /v1 request by method, route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app raises before starting a response

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            _observe(scope, status, time.perf_counter() - started)


def _observe(scope: Scope, status: int, elapsed: float) -> None:
    method = scope["method"] if scope["method"] in _METHODS else "OTHER"
    route = route_template(scope)
    code = str(status)
    API_REQUESTS.labels(method, route, code).inc()
    API_DURATION.labels(method, route, code).observe(elapsed)
    if is_error(status):
        state: dict[str, Any] = scope.get("state") or {}
        # The machine code of the error model (a fixed set); "http_<status>" if none was set.
        error = str(state.get("error_code") or f"http_{status}")
        API_ERRORS.labels(method, route, code, error).inc()


def metrics_router() -> APIRouter:
    """GET /metrics in Prometheus's text format (every uvicorn worker's, in multiprocess mode)."""
    router = APIRouter()
    endpoint = _AsgiEndpoint(metrics_asgi_app())
    router.routes.append(Route("/metrics", endpoint, methods=["GET"], include_in_schema=False))
    return router


class _AsgiEndpoint:
    """Lets Starlette route to a raw ASGI callable (a class instance is not wrapped as a function)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
