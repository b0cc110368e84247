"""Unauthenticated abuse against a real gateway: token attempts limited, webhook endpoints
capped, and the body-size cap holding for chunked bodies sent over a raw socket."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from jorge_runtime.settings import Settings
from schemas.topics import TopicNames
from services.gateway.tenancy import KEY_PREFIX
from tests.support.services import ServiceProcess

LIMIT = 2048


@pytest.fixture
async def strict_gateway(
    settings: Settings, topics: TopicNames, log_dir: Path
) -> AsyncIterator[ServiceProcess]:
    strict = settings.model_copy(
        update={"max_request_bytes": LIMIT, "webhook_max_endpoints_per_organization": 2,
                "token_requests_per_minute_per_ip": 6, "token_requests_per_minute_per_key": 3}
    )  # fmt: skip
    service = await ServiceProcess.gateway(strict, log_dir).start()
    yield service
    service.stop()


async def test_token_attempts_are_limited_per_key_and_per_address(strict_gateway: ServiceProcess) -> None:
    # An address of this test's own (all of 127/8 is loopback): other tests' token requests on
    # the same Redis count against 127.0.0.1 within the same minute.
    address = f"127.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 2}"
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=strict_gateway.base_url, transport=transport) as http:
        wrong = KEY_PREFIX + secrets.token_urlsafe(32)
        same_key = [
            (await http.post("/v1/auth/token", json={"api_key": wrong})).status_code for _ in range(4)
        ]
        others = [
            await http.post("/v1/auth/token", json={"api_key": KEY_PREFIX + secrets.token_urlsafe(32)})
            for _ in range(4)
        ]
    assert same_key == [401, 401, 401, 429]
    # The refused 4th counted nowhere: 3 + 3 spend the address's 6 a minute.
    assert [o.status_code for o in others] == [401, 401, 401, 429]
    refused = others[-1]
    assert refused.json()["error"] == "rate_limit_exceeded"
    assert refused.json()["message"] == "6 token requests per minute from your address exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 60


async def test_webhook_endpoints_are_capped_per_organisation(
    strict_gateway: ServiceProcess, api_key: str
) -> None:
    hook = {"url": "https://hooks.example.com/jorge", "events": ["lead.qualified"]}
    async with httpx.AsyncClient(
        base_url=strict_gateway.base_url, headers={"Authorization": f"Bearer {api_key}"}
    ) as http:
        created = [await http.post("/v1/webhooks/register", json=hook) for _ in range(2)]
        refused = await http.post("/v1/webhooks/register", json=hook)
        assert (await http.delete(f"/v1/webhooks/{created[0].json()['id']}")).status_code == 204
        after_delete = await http.post("/v1/webhooks/register", json=hook)
    assert [c.status_code for c in created] == [201, 201]
    assert refused.status_code == 409
    assert refused.json()["error"] == "webhook_endpoint_limit_reached"
    assert after_delete.status_code == 201


async def _chunked_post(base_url: str, api_key: str, chunks: list[bytes]) -> tuple[int, dict[str, object]]:
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"POST /v1/leads/qualify HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {api_key}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )

    async def answer() -> bytes:
        # Read while still sending: a server that answers 413 and closes before the last chunk
        # makes the chunks sent after that reset the connection, and a reset seen before the
        # answer was read would lose it.
        received = b""
        try:
            while data := await reader.read(65536):
                received += data
        except ConnectionResetError:
            pass
        return received

    reading = asyncio.create_task(answer())
    writer.write(head.encode())
    try:
        for chunk in chunks:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    except ConnectionError:
        pass  # the server may answer 413 and close before the last chunk
    async with asyncio.timeout(15):
        response = await reading
    writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(body) if body.startswith(b"{") else {"raw": response}


async def test_the_body_cap_holds_for_chunked_bodies(strict_gateway: ServiceProcess, api_key: str) -> None:
    lead = json.dumps({"lead_id": "chunky", "email": "a@example.com", "message": "x" * 500}).encode()
    small = await _chunked_post(strict_gateway.base_url, api_key, [lead[:100], lead[100:]])
    # Just over the cap, in many small chunks (the old check let up to twice the cap through).
    padded = json.dumps({"lead_id": "big", "email": "a@example.com", "message": "x" * LIMIT}).encode()
    big = await _chunked_post(
        strict_gateway.base_url, api_key, [padded[i : i + 256] for i in range(0, len(padded), 256)]
    )
    assert small[0] == 201, small
    assert big[0] == 413 and big[1]["error"] == "payload_too_large", big
