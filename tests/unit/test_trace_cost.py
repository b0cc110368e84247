"""The cheap paths of tracing: unsampled requests and publishes pass the decision on, no spans."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from faststream._internal.context.repository import ContextRepo
from faststream.kafka.response import KafkaPublishCommand
from faststream.response.publish_type import PublishType
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler

from jorge_runtime.kafka.telemetry import LeanKafkaTelemetryMiddleware
from jorge_runtime.observability.span_export import FixedHashResource
from jorge_runtime.observability.tracing import ServerSpanMiddleware, redact_url

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
UNSAMPLED_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def _provider(sampler: Sampler) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _sampled(traceparent: str) -> bool:
    return bool(int(traceparent.rsplit("-", 1)[1], 16) & 0x01)


async def _publish(provider: TracerProvider, parent: trace.Span | None) -> dict[str, str]:
    middleware = LeanKafkaTelemetryMiddleware(tracer_provider=provider)(None, context=ContextRepo())
    command = KafkaPublishCommand(
        b"{}", topic="t.lead.received", key=b"lead-1", headers={}, _publish_type=PublishType.PUBLISH
    )
    sent: list[KafkaPublishCommand] = []

    async def call_next(cmd: KafkaPublishCommand) -> None:
        sent.append(cmd)

    if parent is None:
        await middleware.publish_scope(call_next, command)
    else:
        with trace.use_span(parent):
            await middleware.publish_scope(call_next, command)
    return dict(sent[0].headers)


async def test_a_publish_in_an_unsampled_span_makes_no_span_and_passes_the_decision_on() -> None:
    provider, exporter = _provider(ALWAYS_OFF)
    parent = provider.get_tracer("t").start_span("request")
    headers = await _publish(provider, parent)
    context = parent.get_span_context()
    assert headers["traceparent"].startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
    assert not _sampled(headers["traceparent"])
    assert exporter.get_finished_spans() == ()


async def test_a_sampled_publish_is_one_producer_span_whose_context_travels() -> None:
    provider, exporter = _provider(ALWAYS_ON)
    with provider.get_tracer("t").start_as_current_span("request") as parent:
        headers = await _publish(provider, None)
    [publish] = [s for s in exporter.get_finished_spans() if s.name != "request"]
    assert publish.name == "t.lead.received publish"
    assert publish.kind == trace.SpanKind.PRODUCER
    assert publish.parent is not None and publish.parent.span_id == parent.get_span_context().span_id
    assert publish.attributes == {
        "messaging.system": "kafka",
        "messaging.operation": "publish",
        "messaging.destination.name": "t.lead.received",
        "messaging.kafka.message.key": "lead-1",
    }
    context = publish.get_span_context()
    assert context is not None
    assert headers["traceparent"].startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
    assert _sampled(headers["traceparent"])


def _app(provider: TracerProvider) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        current = trace.get_current_span()
        return {
            "recording": str(current.is_recording()),
            "trace": f"{current.get_span_context().trace_id:032x}",
        }

    app.add_middleware(ServerSpanMiddleware, tracer=provider.get_tracer("http"))
    return app


async def _post(app: FastAPI, headers: dict[str, str]) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        response = await client.post("/v1/things/42", headers=headers)
    assert response.status_code == 200
    return response.json()


async def test_server_spans_continue_the_caller_and_follow_its_sampling_decision() -> None:
    provider, exporter = _provider(ParentBased(ALWAYS_ON))
    sampled = await _post(_app(provider), {"traceparent": PARENT})
    [span] = exporter.get_finished_spans()
    assert sampled == {"recording": "True", "trace": "0af7651916cd43dd8448eb211c80319c"}
    assert span.name == "POST /v1/things/{thing_id}"
    assert span.kind == trace.SpanKind.SERVER
    assert span.attributes == {
        "http.route": "/v1/things/{thing_id}",
        "http.request.method": "POST",
        "http.response.status_code": 200,
    }
    exporter.clear()
    unsampled = await _post(_app(provider), {"traceparent": UNSAMPLED_PARENT})
    # The handler still runs in the caller's trace (log lines and publishes carry it), unrecorded.
    assert unsampled == {"recording": "False", "trace": "0af7651916cd43dd8448eb211c80319c"}
    assert exporter.get_finished_spans() == ()
    root = await _post(_app(provider), {})
    assert root["recording"] == "True" and root["trace"] != "0af7651916cd43dd8448eb211c80319c"


def test_the_resource_is_hashed_once_and_still_equal_to_the_plain_one() -> None:
    plain = Resource.create({"service.name": "jorge-test"})
    fixed = FixedHashResource.of(plain)
    assert fixed == plain and hash(fixed) == hash(plain)
    assert fixed.attributes == plain.attributes and fixed.schema_url == plain.schema_url


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        (httpx.URL("https://hooks.example.com/in/t0k3n?sig=abc"), "https://hooks.example.com"),
        (httpx.URL("http://127.0.0.1:8099/contacts/c-123/notes"), "http://127.0.0.1:8099"),
        (
            (b"https", b"services.leadconnectorhq.com", None, b"/contacts/upsert"),
            "https://services.leadconnectorhq.com",
        ),
    ],
)
def test_client_spans_keep_only_the_origin_of_a_url(url: object, origin: str) -> None:
    provider = TracerProvider()
    span = provider.get_tracer("t").start_span(
        "POST", attributes={"url.full": str(url), "http.url": str(url)}
    )
    redact_url(span, ("POST", url, [], None, {}))
    recorded = span.attributes or {}  # type: ignore[attr-defined]
    assert recorded["url.full"] == origin and recorded["http.url"] == origin
