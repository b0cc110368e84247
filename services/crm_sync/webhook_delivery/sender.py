"""The HTTP side of a delivery: one POST, SSRF-checked at connect time, bounded in every way.

Every new connection resolves the host itself and connects only to an address that is public
or on WEBHOOK_ALLOWED_SUBNETS (schemas.webhook_urls.is_blocked_address), so the address checked
is the address connected to: DNS rebinding cannot slip a private address in after a check.
TLS still verifies the certificate against the URL's host name (the URL is not rewritten).
Redirects are never followed, proxies from the environment are ignored, the whole attempt has
one deadline, and at most 20 KB of the answer is read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import httpcore
import httpx

from schemas.webhook_urls import IpNetwork, is_blocked_address
from schemas.webhooks import RESPONSE_BODY_MAX_BYTES

USER_AGENT = "Jorge-Webhooks/1.0"


class AddressNotAllowed(httpcore.ConnectError):
    """The host resolved only to addresses webhooks may not reach (private, loopback, …)."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the SSRF check between DNS resolution and connect."""

    def __init__(self, allowed: Iterable[IpNetwork]) -> None:
        self._allowed = tuple(allowed)
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout("DNS resolution timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"DNS resolution failed: {exc.strerror or exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        permitted = [a for a in addresses if not is_blocked_address(ipaddress.ip_address(a), self._allowed)]
        if not permitted:
            raise AddressNotAllowed("address not allowed: the host resolves to a non-public address")
        last: Exception | None = None
        for address in permitted:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise AddressNotAllowed("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport whose connection pool uses GuardedBackend (httpx has no public hook for
    the network backend, so the pool it builds is replaced by an equivalent one)."""

    def __init__(self, allowed: Iterable[IpNetwork], *, max_connections: int) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
            network_backend=GuardedBackend(allowed),
        )


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

    One pool per endpoint, sized to its concurrency: httpcore scans its whole pool on every
    request (encode/httpx#3215), so one big shared pool costs CPU per request as it grows.
    Idle pools beyond ``max_pools`` are closed, least recently used first.
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
        self._timeout = httpx.Timeout(attempt_timeout, connect=min(connect_timeout, attempt_timeout))
        self._require_https = require_https
        self._max_pools = max_pools
        self._clients: OrderedDict[str, tuple[int, httpx.AsyncClient]] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    def _client(self, pool_key: str, size: int) -> httpx.AsyncClient:
        found = self._clients.get(pool_key)
        if found is not None and found[0] == size:
            self._clients.move_to_end(pool_key)
            return found[1]
        if found is not None:
            self._retire(found[1])
        client = httpx.AsyncClient(
            transport=GuardedTransport(self._allowed, max_connections=size),
            timeout=self._timeout,
            follow_redirects=False,
            trust_env=False,
            headers={"user-agent": USER_AGENT, "content-type": "application/json"},
        )
        self._clients[pool_key] = (size, client)
        while len(self._clients) > self._max_pools:
            _, (_, oldest) = self._clients.popitem(last=False)
            self._retire(oldest)
        return client

    def _retire(self, client: httpx.AsyncClient) -> None:
        """Close a pool once requests that may still use it are over."""

        async def close_later() -> None:
            await asyncio.sleep(self._attempt_timeout + 1)
            await client.aclose()

        task = asyncio.create_task(close_later())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

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
        client = self._client(pool_key, pool_size)
        try:
            async with asyncio.timeout(self._attempt_timeout):
                async with client.stream("POST", url, content=body, headers=dict(headers)) as response:
                    raw = bytearray()
                    async for chunk in response.aiter_bytes():
                        raw += chunk
                        if len(raw) >= RESPONSE_BODY_MAX_BYTES:
                            break
                    text = bytes(raw[:RESPONSE_BODY_MAX_BYTES]).decode(errors="replace")
                    return result(response.status_code, text, retry_after=response.headers.get("retry-after"))
        except AddressNotAllowed as exc:
            return result(error=str(exc))
        except (TimeoutError, httpx.TimeoutException):
            return result(error=f"timeout after {self._attempt_timeout:g}s", timed_out=True)
        except httpx.HTTPError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, AddressNotAllowed):
                return result(error=str(cause))
            return result(error=f"{type(exc).__name__}: {str(exc)[:200] or 'no response'}")

    async def aclose(self) -> None:
        """Close every pool now."""
        for task in list(self._closing):
            task.cancel()
        clients = [client for _, client in self._clients.values()]
        self._clients.clear()
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
