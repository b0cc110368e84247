"""The gateway's edge: request ids, headers set by dependencies, and the content-type rule."""

from __future__ import annotations

import json
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


class EdgeMiddleware:
    """Plain ASGI (no task or stream per request, unlike @app.middleware("http")).

    - gives every request an id (the caller's X-Request-ID if sane) and echoes it back;
    - adds the headers dependencies left in ``scope["state"]["response_headers"]`` (the
      X-RateLimit-* headers) to whatever response goes out, errors included;
    - answers 415 to a body that is not JSON, and 413 to a declared length over the limit
      (FastAPI's own limit still guards chunked bodies).
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        incoming = headers.get("x-request-id", "")
        request_id = incoming if 0 < len(incoming) <= 128 else f"req-{uuid.uuid4().hex}"
        state = scope.setdefault("state", {})
        state["request_id"] = request_id

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                outgoing = MutableHeaders(scope=message)
                outgoing["X-Request-ID"] = request_id
                for name, value in state.get("response_headers", {}).items():
                    outgoing.setdefault(name, value)
            await send(message)

        if scope["method"] in _BODY_METHODS and scope["path"].startswith("/v1/"):
            length = headers.get("content-length", "0")
            if length.isdigit() and int(length) > self.max_body_bytes:
                message = f"The body is larger than {self.max_body_bytes} bytes."
                await _refuse(413, "payload_too_large", message, request_id, send_with_headers)
                return
            if length != "0" and not _is_json(headers.get("content-type", "")):
                message = "Send the body as JSON with `Content-Type: application/json`."
                await _refuse(415, "unsupported_media_type", message, request_id, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)


async def _refuse(status: int, error: str, message: str, request_id: str, send: Send) -> None:
    body = json.dumps({"error": error, "message": message, "request_id": request_id}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
