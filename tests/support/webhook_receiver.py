"""A real HTTP/1.1 webhook receiver in the test's event loop, with scriptable answers.

It records every request (headers, body, arrival time) and the most requests it ever had in
flight at once; `answer(n, request)` decides the n-th answer (status, headers, body, and an
optional awaitable to wait on first, e.g. a delay or an Event that a test releases).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Received:
    """One request as the receiver saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    wait: Callable[[], Awaitable[object]] | None = None


AnswerFn = Callable[[int, Received], Answer]

_REASONS = {200: "OK", 204: "No Content", 302: "Found", 410: "Gone", 429: "Too Many Requests"}


class Receiver:
    """Listens on 127.0.0.1 on a free port until closed."""

    def __init__(self, answer: AnswerFn | None = None) -> None:
        self.answer: AnswerFn = answer or (lambda n, r: Answer())
        self.requests: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrived = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """Wait until ``count`` requests arrived (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"only {len(self.requests)} of {count} requests arrived"
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), min(remaining, 0.2))
        return self.requests

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Received(method, path, headers, body, time.monotonic())
                number = len(self.requests)
                self.requests.append(request)
                self.arrived.set()
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    answer = self.answer(number, request)
                    if answer.wait is not None:
                        await answer.wait()
                finally:
                    self.in_flight -= 1
                reason = _REASONS.get(answer.status, "Status")
                head = [f"HTTP/1.1 {answer.status} {reason}", f"content-length: {len(answer.body)}"]
                head += [f"{k}: {v}" for k, v in answer.headers.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + answer.body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            return  # the client went away, or the test ended while a request was held
        finally:
            self._writers.discard(writer)
            writer.close()
