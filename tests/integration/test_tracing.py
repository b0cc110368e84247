"""One trace follows a lead: gateway request -> Kafka -> qualifier -> PostgreSQL.

The services run as real processes with OTEL_EXPORTER_OTLP_ENDPOINT pointing at an in-memory
OTLP collector (tests/support/otlp.py). To follow the lead further, add the worker's name to
TRACED_WORKERS: it is started, and its spans must share the lead's trace id.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from jorge_runtime.settings import Settings
from schemas.topics import TopicNames
from tests.support.otlp import OtlpCollector, ReceivedSpan
from tests.support.services import ServiceProcess

TRACED_WORKERS: tuple[str, ...] = ("qualifier",)
SERVER, CONSUMER = 2, 5  # OTLP span kinds
QUALIFY_ROUTE = "/v1/leads/qualify"


@pytest.fixture
def collector() -> Iterator[OtlpCollector]:
    with OtlpCollector() as running:
        yield running


@pytest.fixture
def traced(settings: Settings, collector: OtlpCollector) -> Settings:
    return settings.model_copy(update={"otel_exporter_otlp_endpoint": collector.url})


@pytest.fixture
async def services(
    traced: Settings, topics: TopicNames, log_dir: Path
) -> AsyncIterator[dict[str, ServiceProcess]]:
    processes = {"gateway": ServiceProcess.gateway(traced, log_dir)}
    processes |= {name: ServiceProcess.worker(name, traced, log_dir) for name in TRACED_WORKERS}
    for process in processes.values():
        process.env["OTEL_BSP_SCHEDULE_DELAY"] = "100"  # export within 0.1 s, not the default 5 s
    try:
        await asyncio.gather(*(process.start() for process in processes.values()))
        yield processes
    finally:
        for process in processes.values():
            process.stop()


async def wait_completed(client: httpx.AsyncClient, lead_id: str, timeout: float = 30) -> None:
    """Poll the lead's qualification until the worker completed it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await client.get(f"/v1/leads/{lead_id}/qualification")
        if response.status_code == 200 and response.json()["status"] == "completed":
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{lead_id} not completed in {timeout}s")


def _in_trace(spans: list[ReceivedSpan], trace_id: str) -> dict[str, list[ReceivedSpan]]:
    by_service: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        if span.trace_id == trace_id:
            by_service.setdefault(span.service, []).append(span)
    return by_service


async def test_one_trace_follows_a_lead_across_services(
    services: dict[str, ServiceProcess], collector: OtlpCollector, api_key: str
) -> None:
    lead_id = f"lead-trace-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(
        base_url=services["gateway"].base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10
    ) as client:
        response = await client.post(
            QUALIFY_ROUTE,
            json={
                "lead_id": lead_id,
                "name": "Ana",
                "email": "ana@example.com",
                "message": "Pre-approved, 3 bed",
            },
        )
        assert response.status_code == 201, response.text
        await wait_completed(client, lead_id)

    expected = {"jorge-gateway", *(f"jorge-{name}" for name in TRACED_WORKERS)}
    deadline = time.monotonic() + 20
    while True:
        spans = collector.snapshot()
        roots = [s for s in spans if s.kind == SERVER and s.attributes.get("http.route") == QUALIFY_ROUTE]
        trace = _in_trace(spans, roots[0].trace_id) if roots else {}
        if expected <= trace.keys() and any(s.kind == CONSUMER for s in trace.get("jorge-qualifier", [])):
            break
        assert time.monotonic() < deadline, f"services in the trace: {sorted(trace)}; spans: {spans[:20]}"
        await asyncio.sleep(0.2)

    assert len(roots) == 1
    trace_id = roots[0].trace_id
    names = {service: {s.name for s in found} for service, found in trace.items()}
    # The gateway stored the request and published it; the qualifier consumed it in the same trace.
    assert any(s.kind == CONSUMER and s.name.endswith("process") for s in trace["jorge-qualifier"]), names
    assert any("publish" in n for n in names["jorge-gateway"]), names
    assert any(s.attributes.get("db.system") == "postgresql" for s in trace["jorge-qualifier"]), names
    assert any(s.attributes.get("db.system") == "postgresql" for s in trace["jorge-gateway"]), names
    # The consumer span continues the gateway's publish: its parent is a gateway span.
    gateway_ids = {s.span_id for s in trace["jorge-gateway"]}
    process = next(s for s in trace["jorge-qualifier"] if s.kind == CONSUMER and s.name.endswith("process"))
    assert process.parent_span_id in gateway_ids

    # Logs written while handling the lead carry its trace id.
    log = services["qualifier"].log_path.read_text()
    assert f'"trace_id": "{trace_id}"' in log
