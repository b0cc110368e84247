"""`jorge smoke URL KEY`: the post-deploy checks against any running gateway.

Health and readiness, authentication refused without a valid key, a lead qualified end to end
and its result readable, and a signed test webhook delivered. Each check says what it saw; the
command fails when one does. It writes a lead `smoke-…` and a webhook endpoint it deletes again.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Check:
    """One smoke check's verdict."""

    name: str
    ok: bool
    detail: str


class SmokeFailed(Exception):
    """A check failed; its message says what was seen."""


@asynccontextmanager
async def local_receiver() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A webhook receiver on 127.0.0.1 answering 204 (enough when the gateway's crm_sync runs on
    this machine, as under `jorge up`); yields its URL and the raw requests it received."""
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        received.append(head + await reader.readexactly(length))
        writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/jorge-smoke", received
    finally:
        server.close()
        await server.wait_closed()


async def _until(fetch: Any, done: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise SmokeFailed(f"{what} within {timeout:g}s; last seen: {str(value)[:300]}")
        await asyncio.sleep(0.5)


async def _expect(response: httpx.Response, status: int, what: str) -> dict[str, Any]:
    if response.status_code != status:
        raise SmokeFailed(f"{what}: HTTP {response.status_code} (expected {status}): {response.text[:300]}")
    return response.json() if response.content else {}


async def _health(api: httpx.AsyncClient) -> str:
    await _expect(await api.get("/health"), 200, "GET /health")
    ready = await _expect(await api.get("/health/ready"), 200, "GET /health/ready")
    return f"live; ready ({ready.get('status')})"


async def _auth(api: httpx.AsyncClient) -> str:
    path = "/v1/leads/smoke-auth/qualification"
    for label, headers in (
        ("no key", {"Authorization": ""}),
        ("a wrong key", {"Authorization": "Bearer jk_wrong"}),
    ):
        body = await _expect(await api.get(path, headers=headers), 401, f"GET {path} with {label}")
        if not body.get("error") or not body.get("message"):
            raise SmokeFailed(f"401 without error/message: {body}")
    return "401 without a key and with a wrong one"


async def _lead(api: httpx.AsyncClient, timeout: float) -> str:
    lead_id = f"smoke-{int(time.time())}-{secrets.token_hex(3)}"
    lead = {"lead_id": lead_id, "phone": "+1 909 555 0100", "message": "Pre-approved, buying a 3 bed ASAP"}
    await _expect(await api.post("/v1/leads/qualify", json=lead), 201, "POST /v1/leads/qualify")

    async def fetch() -> dict[str, Any]:
        return await _expect(await api.get(f"/v1/leads/{lead_id}/qualification"), 200, "GET qualification")

    view = await _until(
        fetch, lambda v: v.get("status") == "completed", timeout, f"lead {lead_id} not qualified"
    )
    result = view.get("result") or {}
    if not result.get("temperature"):
        raise SmokeFailed(f"lead {lead_id} completed without a result: {view}")
    return f"{lead_id} qualified {result['temperature']}, result readable"


async def _webhook(api: httpx.AsyncClient, url: str, timeout: float) -> str:
    body = {"url": url, "events": ["lead.qualified"], "description": "jorge smoke (deleted after the test)"}
    endpoint = await _expect(
        await api.post("/v1/webhooks/register", json=body), 201, "POST /v1/webhooks/register"
    )
    webhook_id = endpoint["id"]
    try:
        accepted = await _expect(await api.post(f"/v1/webhooks/{webhook_id}/test"), 202, "POST webhook test")

        async def fetch() -> dict[str, Any]:
            return await _expect(await api.get(accepted["delivery_url"]), 200, "GET delivery")

        delivery = await _until(
            fetch, lambda d: d.get("status") in ("succeeded", "failed"), timeout, "test webhook not delivered"
        )
        if delivery["status"] != "succeeded":
            raise SmokeFailed(f"test webhook to {url} failed: {delivery}")
        return f"test event delivered to {url} (HTTP {delivery.get('last_response_code')})"
    finally:
        await api.delete(f"/v1/webhooks/{webhook_id}")


async def run_smoke(
    base_url: str, api_key: str, *, webhook_url: str | None = None, timeout: float = 60.0
) -> list[Check]:
    """Run every check in order (a failed one stops the rest: they build on each other)."""
    checks: list[Check] = []
    async with (
        local_receiver() as (own_url, _received),
        httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {api_key}"}, timeout=15
        ) as api,
    ):
        steps = [
            ("health", _health(api)),
            ("auth", _auth(api)),
            ("lead qualified end to end", _lead(api, timeout)),
            ("webhook test delivered", _webhook(api, webhook_url or own_url, timeout)),
        ]
        for name, step in steps:
            try:
                checks.append(Check(name, True, await step))
            except (SmokeFailed, httpx.HTTPError, KeyError, ValueError) as error:
                checks.append(Check(name, False, f"{type(error).__name__}: {error}"))
                for _, rest in steps[len(checks) :]:
                    rest.close()
                break
    return checks
