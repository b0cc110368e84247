"""OpenTelemetry tracing: one trace per lead, from the HTTP request through Kafka to GHL.

Tracing is on only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (spans go to ``<url>/v1/traces``
over OTLP/HTTP) or when a test hands ``setup_tracing`` an exporter of its own. Otherwise no
tracer provider is installed, no middleware or instrumentation is added, and nothing runs per
request or message: the cost of tracing off is nil, not merely small.

When on, in each process:
- every ``KafkaBroker`` gets FastStream's ``KafkaTelemetryMiddleware`` (``create_broker`` calls
  ``kafka_middlewares``): a publish injects the W3C ``traceparent`` header and a consumer
  continues that trace, so the gateway's request and the worker's handling share a trace id;
- PostgreSQL statements (jorge_runtime/db_telemetry.py) and httpx requests (GHL, webhooks,
  Anthropic) get client spans, installed once per process, so no adapter knows about tracing;
- the gateway's FastAPI app gets server spans named by route template (``instrument_app``,
  a small ASGI middleware: the contrib ASGI instrumentation costs far more per request).

The standard ``OTEL_*`` variables the SDK reads itself (``OTEL_TRACES_SAMPLER``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_BSP_SCHEDULE_DELAY`` ...) work as documented by
OpenTelemetry, from the process environment.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from jorge_runtime.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.telemetry import TelemetryConfig
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

log = logging.getLogger(__name__)

_provider: TracerProvider | None = None
_service: str | None = None


def tracing_enabled(settings: Settings) -> bool:
    """Whether this process traces: an OTLP endpoint is set, or a test installed an exporter."""
    return _provider is not None or bool(settings.otel_exporter_otlp_endpoint)


def setup_tracing(
    settings: Settings, service: str, *, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Install the process's tracer provider once; return it, or None when tracing is off.

    ``exporter`` (e.g. an ``InMemorySpanExporter`` in a test) replaces the OTLP exporter and
    turns tracing on whatever the settings say; its spans are exported synchronously.
    Later calls return the provider installed first.
    """
    global _provider, _service
    if _provider is not None:
        return _provider
    if exporter is None and not settings.otel_exporter_otlp_endpoint:
        return None
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    name = settings.otel_service_name or f"jorge-{service}"
    provider = TracerProvider(
        resource=Resource.create({"service.name": name, "deployment.environment": settings.environment})
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        assert settings.otel_exporter_otlp_endpoint
        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    _instrument_clients(provider)
    _provider, _service = provider, name
    log.info("tracing on", extra={"otel_service_name": name})
    return provider


def _instrument_clients(provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    from jorge_runtime.db_telemetry import QUERY_TRACER

    # PostgreSQL: our own statement wrapper (jorge_runtime/db_telemetry.py), far cheaper than
    # the contrib asyncpg instrumentation. httpx: patched at class level, so clients created
    # before or after (GHL, webhooks, Anthropic) are all covered.
    QUERY_TRACER["tracer"] = provider.get_tracer("jorge.db")
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)


def shutdown_tracing() -> None:
    """Flush pending spans (called when a process stops; safe when tracing is off)."""
    if _provider is not None:
        _provider.force_flush(timeout_millis=5000)


def kafka_middlewares(settings: Settings, service: str) -> list[Any]:
    """Broker middlewares of one process: trace propagation (when tracing) and Kafka metrics.

    The telemetry middleware comes first so that it is outermost: the dead-letter policy and
    the handler run inside the consumer span, and their publishes carry its trace context.
    """
    middlewares: list[Any] = []
    provider = setup_tracing(settings, service)
    if provider is not None:
        from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

        middlewares.append(KafkaTelemetryMiddleware(tracer_provider=provider))
    if settings.metrics_enabled:
        from faststream.kafka.prometheus import KafkaPrometheusMiddleware
        from prometheus_client import REGISTRY

        middlewares.append(KafkaPrometheusMiddleware(registry=REGISTRY, app_name=service))
    return middlewares


#: ``FastAPI(telemetry=...)``: FastAPI's own OpenTelemetry support (0.13x and later) turns on
#: by itself once a tracer provider is installed, with a server span, spans per dependency,
#: endpoint and serialisation, metrics and logs per request. ServerSpanMiddleware does the one
#: span we want; the native one would double it and cost several times as much.
FASTAPI_NATIVE_TELEMETRY_OFF: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


def instrument_app(app: FastAPI, settings: Settings, service: str) -> None:
    """Server spans for a FastAPI app, named by route template; nothing when tracing is off."""
    provider = setup_tracing(settings, service)
    if provider is not None:
        app.add_middleware(ServerSpanMiddleware, tracer=provider.get_tracer("jorge.http"))


class ServerSpanMiddleware:
    """Plain ASGI: one SERVER span per /v1 request, continuing the caller's ``traceparent``.

    A few attributes only (method, route template, status): opentelemetry-instrumentation-asgi
    records much more and, measured on the gateway, cost several times as much CPU per request.
    Probes and scrapes (paths outside /v1) are not traced.
    """

    def __init__(self, app: Any, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        from opentelemetry import propagate, trace

        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        method = scope["method"]
        status = 500

        async def send_and_note_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self.tracer.start_as_current_span(
            method, context=propagate.extract(carrier), kind=trace.SpanKind.SERVER
        ) as span:
            try:
                await self.app(scope, receive, send_and_note_status)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if isinstance(route, str):
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.request.method", method)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(trace.StatusCode.ERROR)
