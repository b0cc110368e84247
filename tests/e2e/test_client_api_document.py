"""Every request and response example of the client's API document against the live platform.

The examples are vendored in tests/data/client_api_document.json (with their source and the
placeholders the document leaves to the reader). Each request example is sent as written, and
each field its response example shows must be in the live answer under the same name with
the same JSON type, nested objects and list items included; the lead.qualified example is
checked against a webhook the platform really delivered.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from standardwebhooks import Webhook

from jorge_cli.demo_catalog import load_demo_catalog
from jorge_runtime.settings import Settings
from schemas.limits import GENERAL
from schemas.topics import TopicNames
from services.gateway.tenancy import TenancyStore
from tests.support.services import REPO, ServiceProcess
from tests.support.webhook_receiver import Receiver

DOCUMENT = json.loads((REPO / "tests" / "data" / "client_api_document.json").read_text())
EXAMPLES: dict[str, dict[str, Any]] = {e["section"]: e for e in DOCUMENT["examples"]}
OWN_SECRET = "your-webhook-secret-for-jorge-crm"
WAIT_TIMEOUT = 40  # the client outwaits the gateway's ?wait=30


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "integer" if isinstance(value, int) else "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}[type(value)]


def shape_problems(shown: Any, live: Any, path: str = "$") -> list[str]:
    """Where ``live`` lacks a field ``shown`` has, or holds it with another JSON type (an integer
    stands for any number where the example shows a decimal)."""
    expected, got = json_type(shown), json_type(live)
    if expected != got and not (expected == "number" and got == "integer"):
        return [f"{path}: the document shows {expected}, the API answered {got}"]
    problems: list[str] = []
    if isinstance(shown, dict):
        for key, value in shown.items():
            if key not in live:
                problems.append(f"{path}.{key}: missing")
            else:
                problems += shape_problems(value, live[key], f"{path}.{key}")
    elif isinstance(shown, list) and shown:
        if not live:
            return [f"{path}: the document shows items, the API answered an empty list"]
        problems += shape_problems(shown[0], live[0], f"{path}[0]")
    return problems


def assert_shape(section: str, live: Any, shown: Any | None = None) -> None:
    example = shown if shown is not None else EXAMPLES[section]["response"]
    problems = shape_problems(example, live)
    assert not problems, f"{section}:\n" + "\n".join(problems) + f"\nlive answer: {live}"


def request_of(section: str, **replacements: Any) -> dict[str, Any]:
    """The document's request example with the placeholders this run must replace."""
    body: dict[str, Any] = dict(EXAMPLES[section]["request"])
    assert set(replacements) <= set(body), "only fields the example shows are replaced"
    return body | replacements


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Loopback receivers allowed, as in the embedded demo."""
    return settings.model_copy(
        update={"webhook_allowed_subnets": "127.0.0.0/8", "webhook_dispatch_poll_seconds": 0.1}
    )


@pytest.fixture
async def platform(
    settings: Settings, topics: TopicNames, log_dir: Path, pool: asyncpg.Pool, organization: str
) -> AsyncIterator[ServiceProcess]:
    """The gateway and every worker, the demo catalog, a booking link and room to run."""
    tenancy = TenancyStore(pool)
    for name in GENERAL:
        await tenancy.set_rate_limit(organization, name, 100_000)
    await tenancy.set_booking_url(organization, "https://book.example.com/widget/booking/demo?lead={lead_id}")
    await load_demo_catalog(pool, organization)
    gateway = ServiceProcess.gateway(settings, log_dir)
    workers = [
        ServiceProcess.worker(name, settings, log_dir)
        for name in ("qualifier", "matcher", "seller_analyzer", "crm_sync")
    ]
    services = [gateway, *workers]
    await asyncio.gather(*(service.start() for service in services))
    yield gateway
    for service in services:
        service.stop()


async def test_every_example_of_the_clients_document_holds_against_the_live_api(
    platform: ServiceProcess, api_key: str, pool: asyncpg.Pool
) -> None:
    run = uuid.uuid4().hex[:8]
    auth = {"Authorization": f"Bearer {api_key}"}
    async with (
        httpx.AsyncClient(base_url=platform.base_url, timeout=WAIT_TIMEOUT, headers=auth) as api,
        Receiver() as receiver,
    ):
        token = await api.post("/v1/auth/token", json=request_of("1.1 JWT Token", api_key=api_key))
        assert token.status_code == 200, token.text
        assert_shape("1.1 JWT Token", token.json())

        hook = await api.post(
            "/v1/webhooks/register",
            json=request_of("1.5 Register Webhook", url=receiver.url(), secret=OWN_SECRET),
        )
        assert hook.status_code == 201, hook.text
        assert hook.json()["secret"] == "whsec_" + base64.b64encode(OWN_SECRET.encode()).decode()

        lead_id = f"lead-{run}"
        qualify = request_of("1.2 POST /v1/leads/qualify", lead_id=lead_id, phone="+1-909-555-0100")
        answer = await api.post("/v1/leads/qualify?wait=30", json=qualify)
        assert answer.status_code == EXAMPLES["1.2 POST /v1/leads/qualify"]["status"], answer.text
        assert_shape("1.2 POST /v1/leads/qualify", answer.json())
        assert answer.json()["intent"] == "buyer_intent" and lead_id in answer.json()["schedule_showing_url"]
        for header in EXAMPLES["1.1 Rate Limiting (headers)"]["response_headers"]:
            assert answer.headers[header].isdigit(), header

        # The GET example shows a lead with a budget, bedrooms and an area: one that said so.
        rich_id = f"lead-rich-{run}"
        said = "Pre-approved, budget $600k-$800k, looking for a 3 bed in Victoria, moving in 2 months"
        rich = request_of(
            "1.2 POST /v1/leads/qualify", lead_id=rich_id, phone="+1-909-555-0101", message=said
        )
        assert (await api.post("/v1/leads/qualify?wait=30", json=rich)).status_code == 201
        view = await recommended(api, rich_id)
        assert_shape("1.2 GET /v1/leads/{lead_id}/qualification", view)

        match = await api.post(
            "/v1/buyers/match-properties?wait=30", json=request_of("1.3 POST /v1/buyers/match-properties")
        )
        assert match.status_code == 200, match.text
        assert_shape("1.3 POST /v1/buyers/match-properties", match.json())

        cma = await api.post("/v1/sellers/analyze?wait=30", json=request_of("1.4 POST /v1/sellers/analyze"))
        assert cma.status_code == 200, cma.text
        assert_shape("1.4 POST /v1/sellers/analyze", cma.json())

        delivered = await webhook_of(receiver, lead_id)
        assert_shape("1.5 lead.qualified", delivered, EXAMPLES["1.5 lead.qualified"]["webhook"])

        health = await api.get(EXAMPLES["2.2 Post-Deployment Verification"]["path"])
        assert health.status_code == 200 and health.json()["status"] == "ok"

    await rate_limited(platform, pool)


async def recommended(api: httpx.AsyncClient, lead_id: str, timeout: float = 40) -> dict[str, Any]:
    """The qualification once the matcher has added its recommended homes."""
    deadline = time.monotonic() + timeout
    while True:
        view = (await api.get(f"/v1/leads/{lead_id}/qualification")).json()
        if view.get("recommended_properties") or time.monotonic() > deadline:
            return dict(view)
        await asyncio.sleep(0.2)


async def webhook_of(receiver: Receiver, lead_id: str, timeout: float = 40) -> dict[str, Any]:
    """The lead.qualified webhook of ``lead_id``, verified both ways the secret allows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for request in receiver.requests:
            event = Webhook("whsec_" + base64.b64encode(OWN_SECRET.encode()).decode()).verify(
                request.body, request.headers
            )
            if event["event"] == "lead.qualified" and event["data"].get("lead_id") == lead_id:
                # The client's own code signs with the secret it chose, as raw HMAC key.
                signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}."
                digest = hmac.new(OWN_SECRET.encode(), signed.encode() + request.body, hashlib.sha256)
                assert (
                    f"v1,{base64.b64encode(digest.digest()).decode()}" in request.headers["webhook-signature"]
                )
                return dict(event)
        await asyncio.sleep(0.2)
    raise AssertionError(f"no lead.qualified webhook for {lead_id} in {timeout}s")


async def rate_limited(platform: ServiceProcess, pool: asyncpg.Pool) -> None:
    """The 429 example: an organisation allowed one request a minute asks twice."""
    tenancy = TenancyStore(pool)
    organization = f"org-limited-{uuid.uuid4().hex[:8]}"
    await tenancy.create_organization(organization, "Limited Realty")
    await tenancy.set_rate_limit(organization, "key_per_minute", 1)
    key = (await tenancy.issue_key(organization, "limited")).secret
    async with httpx.AsyncClient(
        base_url=platform.base_url, headers={"Authorization": f"Bearer {key}"}
    ) as api:
        await api.get("/v1/leads/nobody/qualification")
        refused = await api.get("/v1/leads/nobody/qualification")
    example = EXAMPLES["1.6 Rate Limits (429)"]
    assert refused.status_code == example["status"], refused.text
    assert_shape("1.6 Rate Limits (429)", refused.json())
    for header in example["response_headers"]:
        assert refused.headers[header].isdigit(), header
