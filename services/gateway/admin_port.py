"""Keeps operator endpoints off the public API port when ADMIN_PORT is set.

`jorge gateway` listens on API_PORT and ADMIN_PORT with one app; this middleware routes by the
port a request arrived on: /metrics and /health/detailed only on the admin port, the API only
on the API port, and the liveness and readiness probes on both.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

ADMIN_ONLY_PATHS = frozenset({"/metrics", "/health/detailed"})
PROBE_PATHS = frozenset({"/health", "/health/ready"})


def allowed_on(path: str, *, admin: bool) -> bool:
    """Whether ``path`` is served on the admin port (``admin``) or on the API port."""
    if path in PROBE_PATHS:
        return True
    return (path in ADMIN_ONLY_PATHS) == admin


class AdminPortMiddleware:
    """Answers 404 (in the API's error model) to a path asked on the wrong port."""

    def __init__(self, app: ASGIApp, admin_port: int) -> None:
        self.app = app
        self.admin_port = admin_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            server = scope.get("server") or (None, None)
            if not allowed_on(scope["path"], admin=server[1] == self.admin_port):
                body = json.dumps({"error": "not_found", "message": "Not Found"}).encode()
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({"type": "http.response.start", "status": 404, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
