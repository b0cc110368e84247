"""A local server speaking the Anthropic Messages API, so the real SDK can be tested offline.

It answers ``POST /v1/messages`` with a tool-use message (or a scripted failure: 429 and 529
with ``retry-after``, slow answers, malformed tool input), reports usage with cache fields
(a prefix ending at a ``cache_control`` breakpoint is written once, then read), counts tokens
(``/v1/messages/count_tokens``) and runs Message Batches (``/v1/messages/batches``).

Tokens are estimated as one per four characters of the JSON the request carries: enough to
make prompt-size comparisons and cache accounting real, not to match Anthropic's tokenizer.
Run it alone with ``python -m sandboxes.fake_anthropic --port 8765``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import threading
import time
from collections import deque
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandboxes.fake_anthropic.batches import BatchStore
from sandboxes.fake_anthropic.wire import (
    Answer,
    Behaviour,
    MalformedToolInput,
    Overloaded,
    RateLimited,
    Responder,
    Slow,
    error,
    estimate_tokens,
    minimal_answer,
    prompt_parts,
    user_text,
)


class FakeAnthropic:
    """The fake API and its scripting surface; ``start()`` serves it on a free local port.

    Scripted behaviours are consumed in order: those queued for a marker apply to requests
    whose user text contains the marker, the others to any request; when none is left the
    request is answered normally.
    """

    def __init__(
        self,
        responder: Responder = minimal_answer,
        *,
        min_cacheable_tokens: int = 1024,
        batch_polls_until_ended: int = 1,
    ) -> None:
        self.responder = responder
        self.min_cacheable_tokens = min_cacheable_tokens
        self.batch_polls_until_ended = batch_polls_until_ended
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.statuses: list[int] = []
        self._queue: deque[Behaviour] = deque()
        self._marked: dict[str, deque[Behaviour]] = {}
        self._cache: set[str] = set()
        self._batches = BatchStore(self)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.app = Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self._count_tokens, methods=["POST"]),
                Route("/v1/messages/batches", self._batches.create, methods=["POST"]),
                Route("/v1/messages/batches/{batch_id}", self._batches.retrieve, methods=["GET"]),
                Route("/v1/messages/batches/{batch_id}/results", self._batches.results, methods=["GET"]),
            ]
        )

    # ------------------------------------------------------------------ scripting
    def script(self, *behaviours: Behaviour, marker: str | None = None) -> None:
        """Queue behaviours for the next requests (or the next ones containing ``marker``)."""
        with self._lock:
            target = self._queue if marker is None else self._marked.setdefault(marker, deque())
            target.extend(behaviours)

    def next_behaviour(self, text: str) -> Behaviour:
        with self._lock:
            for marker, queue in self._marked.items():
                if marker in text and queue:
                    return queue.popleft()
            return self._queue.popleft() if self._queue else Answer()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeAnthropic:
        """Serve on 127.0.0.1 and a free port in a background thread; sets ``url``."""
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-anthropic", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake Anthropic server did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ Messages API
    async def checked_body(self, request: Request) -> dict[str, Any] | JSONResponse:
        if not request.headers.get("x-api-key") and not request.headers.get("authorization"):
            return error(401, "authentication_error", "x-api-key header is required")
        if not request.headers.get("anthropic-version"):
            return error(400, "invalid_request_error", "anthropic-version header is required")
        try:
            body = await request.json()
        except ValueError:
            return error(400, "invalid_request_error", "body is not JSON")
        if not isinstance(body, dict):
            return error(400, "invalid_request_error", "body must be an object")
        return body

    async def _messages(self, request: Request) -> Response:
        body = await self.checked_body(request)
        if isinstance(body, JSONResponse):
            self.statuses.append(body.status_code)
            return body
        missing = [k for k in ("model", "max_tokens", "messages") if k not in body]
        if missing:
            return error(400, "invalid_request_error", f"{missing[0]}: Field required")
        self.requests.append(body)
        self.in_flight += 1  # one event loop serves every request: no lock needed
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(body)
        finally:
            self.in_flight -= 1

    async def _answer(self, body: dict[str, Any]) -> Response:
        behaviour = self.next_behaviour(user_text(body))
        if isinstance(behaviour, RateLimited | Overloaded):
            status, kind = (
                (429, "rate_limit_error") if isinstance(behaviour, RateLimited) else (529, "overloaded_error")
            )
            self.statuses.append(status)
            headers = {"retry-after": f"{behaviour.retry_after:g}"}
            return error(status, kind, "scripted by the fake server", headers)
        if isinstance(behaviour, Slow):
            await asyncio.sleep(behaviour.seconds)
        self.statuses.append(200)
        return JSONResponse(self.message_for(body, behaviour))

    def message_for(self, body: dict[str, Any], behaviour: Behaviour) -> dict[str, Any]:
        """A complete Message for ``body``, with usage and cache accounting."""
        if isinstance(behaviour, MalformedToolInput):
            tool_input = behaviour.tool_input
        else:
            tool_input = self.responder(body)
        choice = body.get("tool_choice") or {}
        if choice.get("type") == "tool":
            content: list[dict[str, Any]] = [
                {
                    "type": "tool_use",
                    "id": f"toolu_fake{next(self._ids):06d}",
                    "name": choice["name"],
                    "input": tool_input,
                }
            ]
            stop_reason = "tool_use"
        else:
            content = [{"type": "text", "text": json.dumps(tool_input)}]
            stop_reason = "end_turn"
        return {
            "id": f"msg_fake{next(self._ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": self._usage(body, estimate_tokens(tool_input)),
        }

    def _usage(self, body: dict[str, Any], output_tokens: int) -> dict[str, int]:
        parts = prompt_parts(body)
        total = estimate_tokens(parts)
        breakpoints = [
            i for i, part in enumerate(parts) if isinstance(part, dict) and part.get("cache_control")
        ]
        cache_read = cache_write = 0
        if breakpoints:
            prefix = parts[: breakpoints[-1] + 1]
            prefix_tokens = estimate_tokens(prefix)
            if prefix_tokens >= self.min_cacheable_tokens:
                key = hashlib.sha256(json.dumps([body["model"], prefix], sort_keys=True).encode()).hexdigest()
                with self._lock:
                    seen = key in self._cache
                    self._cache.add(key)
                cache_read, cache_write = (prefix_tokens, 0) if seen else (0, prefix_tokens)
        return {
            "input_tokens": max(1, total - cache_read - cache_write),
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": cache_write,
            "cache_read_input_tokens": cache_read,
        }

    async def _count_tokens(self, request: Request) -> Response:
        body = await self.checked_body(request)
        if isinstance(body, JSONResponse):
            return body
        return JSONResponse({"input_tokens": estimate_tokens(prompt_parts(body))})
