"""OpenTelemetry tracing: one trace per lead, from the HTTP request through Kafka to GHL.

Tracing is on only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (spans go to ``<url>/v1/traces``
over OTLP/HTTP) or when a test hands ``setup_tracing`` an exporter of its own. Otherwise no
tracer provider is installed, no middleware or instrumentation is added, and nothing runs per
request or message: the cost of tracing off is nil, not merely small.

When on, in each process:
- every ``KafkaBroker`` gets ``LeanKafkaTelemetryMiddleware`` (jorge_runtime/kafka/telemetry.py,
  FastStream's consumer side with a cheaper publish side; ``create_broker`` calls
  ``kafka_middlewares``): a publish injects the W3C ``traceparent`` header and a consumer
  continues that trace, so the gateway's request and the worker's handling share a trace id;
- PostgreSQL statements (jorge_runtime/observability/db_telemetry.py) and httpx requests (GHL,
  Anthropic) get client spans, installed once per process, so no adapter knows about tracing;
  webhook POSTs (aiohttp) get theirs from ``http_client_span``;
- the gateway's FastAPI app gets server spans named by route template (``instrument_app``,
  a small ASGI middleware: the contrib ASGI instrumentation costs far more per request);
- work outside a FastStream consumer (crm_sync's delay queue, webhook attempts claimed from
  PostgreSQL) joins its event's trace through ``trace_context`` / ``continued_span``.

The standard ``OTEL_*`` variables the SDK reads itself (``OTEL_TRACES_SAMPLER``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_BSP_SCHEDULE_DELAY`` ...) work as documented by
OpenTelemetry, from the process environment.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx

from jorge_runtime.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.telemetry import TelemetryConfig
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, SpanKind, Tracer

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

    from jorge_runtime.observability.span_export import FixedHashResource

    name = settings.otel_service_name or f"jorge-{service}"
    resource = Resource.create({"service.name": name, "deployment.environment": settings.environment})
    provider = TracerProvider(resource=FixedHashResource.of(resource))
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

    from jorge_runtime.observability.db_telemetry import QUERY_TRACER

    # PostgreSQL: our own statement wrapper (jorge_runtime/observability/db_telemetry.py), far cheaper than
    # the contrib asyncpg instrumentation. httpx: patched at class level, so clients created
    # before or after (GHL, webhooks, Anthropic) are all covered.
    QUERY_TRACER["tracer"] = provider.get_tracer("jorge.db")
    HTTPXClientInstrumentor().instrument(
        tracer_provider=provider, request_hook=redact_url, async_request_hook=redact_url_async
    )


def url_origin(url: object) -> str:
    """``scheme://host[:port]`` of a URL (an httpx.URL, a raw transport tuple or a string)."""
    if isinstance(url, tuple):
        scheme, host, port, _ = (p.decode() if isinstance(p, bytes) else p for p in url)
    else:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(str(url))
        scheme, host, port = parsed.scheme, parsed.host, parsed.port
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def redact_url(span: Span, request: Any) -> None:
    """Keep only the origin of a client span's URL: webhook paths and queries can carry a
    subscriber's token and GHL paths carry contact ids, and traces leave the process."""
    if not span.is_recording():
        return
    attributes = getattr(span, "attributes", None) or {}
    for key in ("http.url", "url.full"):
        if key in attributes:
            span.set_attribute(key, url_origin(request[1]))


async def redact_url_async(span: Span, request: Any) -> None:
    """redact_url for async clients."""
    redact_url(span, request)


def shutdown_tracing() -> None:
    """Flush pending spans (called when a process stops; safe when tracing is off)."""
    if _provider is not None:
        _provider.force_flush(timeout_millis=5000)


def trace_context() -> dict[str, str]:
    """The current span's W3C trace context (``traceparent`` ...), to store with work that runs
    later outside it (a webhook delivery); ``{}`` when tracing is off or no span is current."""
    if _provider is None:
        return {}
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def continued_span(
    name: str,
    carrier: Mapping[str, str] | None,
    *,
    kind: SpanKind | None = None,
    attributes: Mapping[str, str | int | bool] | None = None,
) -> Iterator[Span | None]:
    """A current span whose parent is the trace context in ``carrier`` (Kafka headers, a stored
    ``trace_context()``), or a new trace's root if it holds none. Yields None, and costs one
    check, when tracing is off. Work done outside a FastStream consumer (a raw aiokafka
    consumer, a task claiming rows) joins the trace it belongs to through this."""
    if _provider is None:
        yield None
        return
    from opentelemetry import propagate, trace

    with _provider.get_tracer("jorge").start_as_current_span(
        name,
        context=propagate.extract(dict(carrier or {})),
        kind=kind if kind is not None else trace.SpanKind.INTERNAL,
        attributes=dict(attributes or {}),
    ) as span:
        yield span


@contextmanager
def http_client_span(method: str, url: str) -> Iterator[tuple[Span | None, dict[str, str]]]:
    """A client span for an HTTP request made without httpx (whose requests are traced by its
    instrumentation), and the headers that carry its context to the server. Only the URL's
    origin is recorded (``url_origin``), as for httpx. Yields ``(None, {})``, and costs one
    check, when tracing is off."""
    if _provider is None:
        yield None, {}
        return
    from opentelemetry import propagate, trace

    with _provider.get_tracer("jorge").start_as_current_span(
        method,
        kind=trace.SpanKind.CLIENT,
        attributes={"http.request.method": method, "url.full": url_origin(url)},
    ) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield span, carrier


def kafka_middlewares(settings: Settings, service: str) -> list[Any]:
    """Broker middlewares of one process: trace propagation (when tracing) and Kafka metrics.

    The telemetry middleware comes first so that it is outermost: the dead-letter policy and
    the handler run inside the consumer span, and their publishes carry its trace context.
    """
    middlewares: list[Any] = []
    provider = setup_tracing(settings, service)
    if provider is not None:
        from jorge_runtime.kafka.telemetry import LeanKafkaTelemetryMiddleware

        middlewares.append(LeanKafkaTelemetryMiddleware(tracer_provider=provider))
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
        from opentelemetry import context, propagate, trace

        self.app = app
        self.tracer = tracer
        self._context, self._propagate, self._trace = context, propagate, trace
        # Header names the configured propagators read (traceparent, tracestate, baggage ...).
        self._fields = frozenset(name.encode("latin-1") for name in propagate.get_global_textmap().fields)
        self._root = context.Context()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        trace = self._trace
        # Only the propagation headers, and extraction only when the caller sent one: decoding
        # every header of every request cost more than an unsampled span.
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in self._fields}
        parent = self._propagate.extract(carrier) if carrier else self._root
        method = scope["method"]
        span = self.tracer.start_span(method, context=parent, kind=trace.SpanKind.SERVER)
        token = self._context.attach(trace.set_span_in_context(span, parent))
        try:
            if span.is_recording():
                await self._recorded(span, method, scope, receive, send)
            else:  # not sampled: the span only carries the decision to the database and Kafka
                await self.app(scope, receive, send)
        finally:
            self._context.detach(token)

    async def _recorded(self, span: Span, method: str, scope: Any, receive: Any, send: Any) -> None:
        trace = self._trace
        status = 500

        async def send_and_note_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            route = getattr(scope.get("route"), "path", None)
            if isinstance(route, str):
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            span.set_attribute("http.request.method", method)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(trace.StatusCode.ERROR)
            span.end()
