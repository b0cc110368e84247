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
    - answers 415 to a body that is not JSON, and 413 to a body over the limit: at once for a
      declared Content-Length, and for a chunked body (no length) as soon as the bytes read
      pass the limit. uvicorn sets no body limit of its own and hands a chunked body over as
      several ``http.request`` messages (``more_body``), de-chunked; so the chunked body is read
      here, at most the limit plus one message, and replayed to the app
      (tests/e2e/test_gateway_abuse.py sends one over a raw socket).
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
            too_big = f"The body is larger than {self.max_body_bytes} bytes."
            chunked = "chunked" in headers.get("transfer-encoding", "").lower()
            length = headers.get("content-length", "0")
            if length.isdigit() and int(length) > self.max_body_bytes:
                await _refuse(413, "payload_too_large", too_big, request_id, send_with_headers)
                return
            if (chunked or length != "0") and not _is_json(headers.get("content-type", "")):
                message = "Send the body as JSON with `Content-Type: application/json`."
                await _refuse(415, "unsupported_media_type", message, request_id, send_with_headers)
                return
            if chunked:
                body = await _read_at_most(receive, self.max_body_bytes)
                if body is None:
                    await _refuse(413, "payload_too_large", too_big, request_id, send_with_headers)
                    return
                receive = _replay(body, receive)
        await self.app(scope, receive, send_with_headers)


async def _read_at_most(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it is longer than ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the buffered body once, then whatever the server says next."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _refuse(status: int, error: str, message: str, request_id: str, send: Send) -> None:
    body = json.dumps({"error": error, "message": message, "request_id": request_id}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
