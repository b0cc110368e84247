"""The HTTP side of a delivery: one POST, SSRF-checked at connect time, bounded in every way.

Every new connection resolves the host itself and connects only to an address that is public
or on WEBHOOK_ALLOWED_SUBNETS (schemas.webhook_urls.is_blocked_address), so the address checked
is the address connected to: DNS rebinding cannot slip a private address in after a check. A
host written as an IP address is checked as written (it is never resolved).
TLS still verifies the certificate against the URL's host name (the URL is not rewritten).
Redirects are never followed, proxies from the environment are ignored, the whole attempt has
one deadline, and at most 20 KB of the answer is read.

aiohttp, not httpx: a POST costs about 0.1 ms of CPU with aiohttp and 1.1 ms with httpx on the
same machine (bench/README.md, pipeline_throughput), and every lead's webhook is one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import aiohttp
import certifi
from aiohttp.abc import ResolveResult
from aiohttp.helpers import is_ip_address
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from jorge_runtime.observability.tracing import http_client_span
from schemas.webhook_urls import IpNetwork, is_blocked_address
from schemas.webhooks import RESPONSE_BODY_MAX_BYTES

USER_AGENT = "Jorge-Webhooks/1.0"
_NOT_ALLOWED = "address not allowed: the host resolves to a non-public address"


class AddressNotAllowed(OSError):
    """The host resolved only to addresses webhooks may not reach (private, loopback, …)."""


def _blocked(address: str, allowed: Iterable[IpNetwork]) -> bool:
    try:
        return is_blocked_address(ipaddress.ip_address(address.split("%", 1)[0]), allowed)
    except ValueError:
        return True  # not an address ipaddress understands: never connected to


class GuardedResolver(ThreadedResolver):
    """aiohttp's resolver with the SSRF check between DNS resolution and connect: only
    permitted addresses are returned, so only they are ever connected to."""

    def __init__(self, allowed: Iterable[IpNetwork]) -> None:
        super().__init__()
        self._allowed = tuple(allowed)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        permitted = [
            found
            for found in await super().resolve(host, port, family)
            if not _blocked(found["host"], self._allowed)
        ]
        if not permitted:
            raise AddressNotAllowed(_NOT_ALLOWED)
        return permitted


@dataclass(frozen=True, slots=True)
class SendResult:
    """What came back from one POST: a status and up to 20 KB of body, or the reason there was none."""

    status_code: int | None
    body: str | None
    error: str | None
    timed_out: bool
    retry_after: str | None
    duration_ms: int


class WebhookSender:
    """Sends signed webhook POSTs, through one small guarded pool per endpoint.

    One pool per endpoint, sized to its concurrency, so an endpoint never holds more than its
    share of connections; idle pools beyond ``max_pools`` are closed, least recently used first.
    """

    def __init__(
        self,
        *,
        allowed: Iterable[IpNetwork],
        attempt_timeout: float,
        connect_timeout: float,
        require_https: bool,
        max_pools: int = 1000,
    ) -> None:
        self._allowed = tuple(allowed)
        self._attempt_timeout = attempt_timeout
        self._timeout = aiohttp.ClientTimeout(
            total=attempt_timeout, sock_connect=min(connect_timeout, attempt_timeout)
        )
        self._require_https = require_https
        self._max_pools = max_pools
        self._tls = ssl.create_default_context(cafile=certifi.where())
        self._sessions: OrderedDict[str, tuple[int, aiohttp.ClientSession]] = OrderedDict()
        #: Pools replaced or evicted, each closed by its task once its requests are over.
        self._retiring: dict[aiohttp.ClientSession, asyncio.Task[None]] = {}

    def _session(self, pool_key: str, size: int) -> aiohttp.ClientSession:
        found = self._sessions.get(pool_key)
        if found is not None and found[0] == size:
            self._sessions.move_to_end(pool_key)
            return found[1]
        if found is not None:
            self._retire(found[1])
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=size, keepalive_timeout=30.0, ssl=self._tls, resolver=GuardedResolver(self._allowed)
            ),
            timeout=self._timeout,
            # Never compressed: the 20 KB kept of an answer are its own bytes, and no
            # decompression bomb can be sent back.
            headers={
                "user-agent": USER_AGENT,
                "content-type": "application/json",
                "accept-encoding": "identity",
            },
            trust_env=False,
            auto_decompress=False,
        )
        self._sessions[pool_key] = (size, session)
        while len(self._sessions) > self._max_pools:
            _, (_, oldest) = self._sessions.popitem(last=False)
            self._retire(oldest)
        return session

    def _retire(self, session: aiohttp.ClientSession) -> None:
        """Close a pool once requests that may still use it are over."""

        async def close_later() -> None:
            await asyncio.sleep(self._attempt_timeout + 1)
            await session.close()
            del self._retiring[session]

        self._retiring[session] = asyncio.create_task(close_later())

    async def send(
        self, url: str, body: bytes, headers: Mapping[str, str], *, pool_key: str = "", pool_size: int = 10
    ) -> SendResult:
        """POST ``body``; never raises for anything the receiver or the network does."""
        started = time.monotonic()

        def result(status: int | None = None, text: str | None = None, error: str | None = None,
                   timed_out: bool = False, retry_after: str | None = None) -> SendResult:  # fmt: skip
            duration = int((time.monotonic() - started) * 1000)
            return SendResult(status, text, error, timed_out, retry_after, duration)

        if self._require_https and not url.startswith("https://"):
            return result(error="refused: this server only delivers webhooks over HTTPS")
        try:
            target = URL(url, encoded=True)
        except ValueError:
            return result(error="refused: the URL cannot be parsed")
        # aiohttp never resolves a host written as an IP address: the resolver would not see it.
        if is_ip_address(target.raw_host) and _blocked(target.raw_host or "", self._allowed):
            return result(error=_NOT_ALLOWED)
        session = self._session(pool_key, pool_size)
        try:
            with http_client_span("POST", url) as (span, trace):
                async with (
                    asyncio.timeout(self._attempt_timeout),
                    session.post(
                        target, data=body, headers={**headers, **trace}, allow_redirects=False
                    ) as answer,
                ):
                    raw = bytearray()
                    while len(raw) < RESPONSE_BODY_MAX_BYTES:
                        chunk = await answer.content.read(RESPONSE_BODY_MAX_BYTES - len(raw))
                        if not chunk:
                            break
                        raw += chunk
                    if span is not None:
                        span.set_attribute("http.response.status_code", answer.status)
                    text = bytes(raw).decode(errors="replace")
                    return result(answer.status, text, retry_after=answer.headers.get("retry-after"))
        except TimeoutError:
            return result(error=f"timeout after {self._attempt_timeout:g}s", timed_out=True)
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressNotAllowed):
                return result(error=str(exc.os_error))
            return result(error=f"ConnectError: {str(exc.os_error)[:200] or 'no connection'}")
        except (aiohttp.ClientError, OSError) as exc:
            return result(error=f"{type(exc).__name__}: {str(exc)[:200] or 'no response'}")

    async def aclose(self) -> None:
        """Close every pool now."""
        for task in self._retiring.values():
            task.cancel()
        sessions = [session for _, session in self._sessions.values()] + list(self._retiring)
        self._sessions.clear()
        self._retiring.clear()
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
