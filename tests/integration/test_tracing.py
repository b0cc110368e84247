"""One trace follows a lead: gateway request -> Kafka -> qualifier -> PostgreSQL -> crm_sync ->
GHL (through a retry on the delay topics) and the webhook delivery.

The services run as real processes with OTEL_EXPORTER_OTLP_ENDPOINT pointing at an in-memory
OTLP collector (tests/support/otlp.py); GHL is the sandbox, the subscriber a real receiver.
To follow the lead further, add the worker's name to TRACED_WORKERS: it is started, and its
spans must share the lead's trace id.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from jorge_runtime.settings import Settings
from schemas.topics import CRM_LANE_HOT, CRM_LANE_STANDARD, CRM_RETRY_TOPICS, LEAD_QUALIFIED, TopicNames
from tests.support.ghl import Sandbox
from tests.support.otlp import OtlpCollector, ReceivedSpan
from tests.support.services import ServiceProcess
from tests.support.waiting import eventually
from tests.support.webhook_receiver import Receiver

TRACED_WORKERS: tuple[str, ...] = ("qualifier", "crm_sync")
SERVER, CLIENT, CONSUMER = 2, 3, 5  # OTLP span kinds
QUALIFY_ROUTE = "/v1/leads/qualify"


@pytest.fixture
def collector() -> Iterator[OtlpCollector]:
    with OtlpCollector() as running:
        yield running


@pytest.fixture
def traced(settings: Settings, collector: OtlpCollector, sandbox: Sandbox, organization: str) -> Settings:
    return settings.model_copy(
        update={
            "otel_exporter_otlp_endpoint": collector.url,
            "ghl_base_url": sandbox.url,
            "ghl_token": SecretStr(f"token-{organization}"),
            "ghl_organization": organization,
            "ghl_location_id": f"loc-{organization}",
            "ghl_budget_burst": 1000,
            "ghl_budget_interval_ms": 1000,
            "ghl_budget_margin_ms": 50,
            "crm_retry_delays_seconds": "0.2,0.5,1,1,1",
            "webhook_allowed_subnets": "127.0.0.0/8",
            "webhook_dispatch_poll_seconds": 0.1,
        }
    )


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


def _in_trace(spans: list[ReceivedSpan], trace_id: str) -> dict[str, list[ReceivedSpan]]:
    by_service: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        if span.trace_id == trace_id:
            by_service.setdefault(span.service, []).append(span)
    return by_service


def _to(port: int) -> str:
    return f"127.0.0.1:{port}"


def _calls(spans: list[ReceivedSpan], port: int) -> list[ReceivedSpan]:
    """httpx client spans to 127.0.0.1:<port>."""
    return [s for s in spans if s.kind == CLIENT and any(_to(port) in str(v) for v in s.attributes.values())]


def _ancestors(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[ReceivedSpan]:
    found = []
    while span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        found.append(span)
    return found


@dataclass(frozen=True)
class _Trace:
    """The lead's trace as the collector received it: spans by service and by id."""

    root: ReceivedSpan
    spans: dict[str, list[ReceivedSpan]]
    by_id: dict[str, ReceivedSpan]

    @property
    def names(self) -> dict[str, set[str]]:
        return {service: {s.name for s in found} for service, found in self.spans.items()}


async def _complete_trace(
    collector: OtlpCollector, retry_topics: set[str], ghl_port: int, receiver_port: int
) -> _Trace:
    """The lead's trace once every service has exported its part (the qualifier's consumer, the
    GHL calls before and after the delay topic, the webhook delivery and its POST)."""
    seen: dict[str, list[ReceivedSpan]] = {}

    async def complete() -> _Trace | None:
        nonlocal seen
        spans = collector.snapshot()
        roots = [s for s in spans if s.kind == SERVER and s.attributes.get("http.route") == QUALIFY_ROUTE]
        seen = _in_trace(spans, roots[0].trace_id) if roots else {}
        crm = seen.get("jorge-crm_sync", [])
        consumed = {s.name.removesuffix(" process") for s in crm if s.kind == CONSUMER}
        if (
            any(s.kind == CONSUMER for s in seen.get("jorge-qualifier", []))
            and consumed & retry_topics
            and len(_calls(crm, ghl_port)) >= 2  # the failed call and, after the retry, the good ones
            and _calls(crm, receiver_port)
            and any(s.name == "webhook.deliver" for s in crm)
        ):
            assert len(roots) == 1
            by_id = {s.span_id: s for found in seen.values() for s in found}
            return _Trace(roots[0], seen, by_id)
        return None

    return await eventually(
        complete,
        30,
        lambda _: f"in the trace: { {k: sorted({s.name for s in v}) for k, v in seen.items()} }",
        interval=0.2,
    )


def _qualifier_continues_the_gateways_publish(trace: _Trace) -> None:
    """The gateway stored the request and published it; the qualifier consumed it in the same trace."""
    names, spans = trace.names, trace.spans
    assert any(s.kind == CONSUMER and s.name.endswith("process") for s in spans["jorge-qualifier"]), names
    assert any("publish" in n for n in names["jorge-gateway"]), names
    assert any(s.attributes.get("db.system") == "postgresql" for s in spans["jorge-qualifier"]), names
    assert any(s.attributes.get("db.system") == "postgresql" for s in spans["jorge-gateway"]), names
    # The consumer span continues the gateway's publish: its parent is a gateway span.
    gateway_ids = {s.span_id for s in spans["jorge-gateway"]}
    process = next(s for s in spans["jorge-qualifier"] if s.kind == CONSUMER and s.name.endswith("process"))
    assert process.parent_span_id in gateway_ids


def _crm_sync_consumers_and_ghl_calls_descend_from_the_request(
    trace: _Trace, topics: TopicNames, retry_topics: set[str], ghl_port: int
) -> None:
    """crm_sync: intake of lead.qualified, its lane, and the delay topic after GHL's 503, each
    consumer span a descendant of the gateway's request; the failed GHL call under the lane's
    span, the successful ones under the retry's."""
    names, by_id = trace.names, trace.by_id
    lanes = {topics(CRM_LANE_HOT), topics(CRM_LANE_STANDARD)}
    crm = trace.spans["jorge-crm_sync"]
    consumers = {s.name.removesuffix(" process"): s for s in crm if s.kind == CONSUMER}
    assert topics(LEAD_QUALIFIED) in consumers, names
    assert consumers.keys() & lanes, names
    assert consumers.keys() & retry_topics, names
    for topic, consumer in consumers.items():
        assert trace.root in _ancestors(consumer, by_id), consumer
        if topic != topics(LEAD_QUALIFIED):  # republished by crm_sync: its own publish is the parent
            assert by_id[consumer.parent_span_id].service == "jorge-crm_sync", consumer
    retry_span = next(s for topic, s in consumers.items() if topic in retry_topics)
    ghl_calls = _calls(crm, ghl_port)
    assert any(retry_span in _ancestors(call, by_id) for call in ghl_calls), names
    [lane] = consumers.keys() & lanes
    assert any(consumers[lane] in _ancestors(call, by_id) for call in ghl_calls), names


def _webhook_delivery_continues_the_fan_out(trace: _Trace, receiver_port: int) -> None:
    """An attempt span continuing the fan-out's context, and its POST under it."""
    crm = trace.spans["jorge-crm_sync"]
    [deliver] = [s for s in crm if s.name == "webhook.deliver"]
    assert deliver.attributes == {
        "webhook.event_type": "lead.qualified",
        "webhook.attempt": 1,
        "webhook.trigger": "scheduled",
        "webhook.outcome": "succeeded",
    }
    assert trace.root in _ancestors(deliver, trace.by_id)
    [post] = _calls(crm, receiver_port)
    assert post.parent_span_id == deliver.span_id


async def test_one_trace_follows_a_lead_across_services(
    services: dict[str, ServiceProcess],
    collector: OtlpCollector,
    sandbox: Sandbox,
    topics: TopicNames,
    api_key: str,
) -> None:
    lead_id = f"lead-trace-{uuid.uuid4().hex[:8]}"
    ghl_port = int(sandbox.url.rsplit(":", 1)[1])
    retry_topics = {topics(spec) for spec in CRM_RETRY_TOPICS}
    async with (
        Receiver() as rx,
        httpx.AsyncClient(
            base_url=services["gateway"].base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10
        ) as client,
    ):
        registered = await client.post(
            "/v1/webhooks/register", json={"url": rx.url(), "events": ["lead.qualified"]}
        )
        assert registered.status_code == 201, registered.text
        receiver_port = rx.port
        await sandbox.faults(burst_5xx=1)  # GHL's first answer is a 503: the write goes via a delay topic
        response = await client.post(
            QUALIFY_ROUTE,
            json={
                "lead_id": lead_id,
                "name": "Ana",
                "email": "ana@example.com",
                "message": "Pre-approved for $700k, 3 bed, moving next month",
            },
        )
        assert response.status_code == 201, response.text
        await rx.wait_for(1, timeout=30)
        trace = await _complete_trace(collector, retry_topics, ghl_port, receiver_port)

    _qualifier_continues_the_gateways_publish(trace)
    _crm_sync_consumers_and_ghl_calls_descend_from_the_request(trace, topics, retry_topics, ghl_port)
    _webhook_delivery_continues_the_fan_out(trace, receiver_port)
    # Logs written while handling the lead carry its trace id.
    log = services["qualifier"].log_path.read_text()
    assert f'"trace_id": "{trace.root.trace_id}"' in log
