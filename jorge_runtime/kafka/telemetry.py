"""Kafka trace propagation: FastStream's consumer spans, and a lean publish side of our own.

FastStream's ``KafkaTelemetryMiddleware`` makes two spans per publish ("create" and "publish"),
builds their attribute dicts, merges baggage and records an OpenTelemetry histogram, all of it
also for a request that is not sampled, where every span is a no-op. On the gateway (one publish
per request) that was most of what tracing cost at 10 % sampling. Here a publish:

- inside a span that is not sampled: only copies the caller's ``traceparent`` (sampled flag
  off) into the headers, so the consumer follows the same decision and no worker starts a trace
  of its own for it; no span is made;
- otherwise (a sampled span, or no span at all, where the sampler decides for a new trace):
  one PRODUCER span ``<topic> publish`` whose context goes in the headers, so the consumer's
  ``<topic> process`` span is its child.

Consumption stays FastStream's (the ``process`` span continuing the message's ``traceparent``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.opentelemetry.middleware import BaseTelemetryMiddleware
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from faststream._internal.context.repository import ContextRepo
    from faststream.kafka.response import KafkaPublishCommand

# The propagator FastStream's consumer side extracts with (W3C trace context only).
_PROPAGATOR = TraceContextTextMapPropagator()
_EMPTY = Context()


class LeanKafkaTelemetryMiddleware(KafkaTelemetryMiddleware):
    """``KafkaTelemetryMiddleware`` whose publish side makes one span, and none when unsampled."""

    def __call__(self, msg: Any | None, /, *, context: ContextRepo) -> BaseTelemetryMiddleware[Any]:
        return _LeanMiddleware(
            msg,
            tracer=self._tracer,
            metrics_container=self._metrics,
            settings_provider_factory=self._settings_provider_factory,
            context=context,
        )


class _LeanMiddleware(BaseTelemetryMiddleware[Any]):
    __slots__ = ()

    async def publish_scope(
        self, call_next: Callable[[KafkaPublishCommand], Awaitable[Any]], msg: KafkaPublishCommand
    ) -> Any:
        # A handler's return value is published after its process span was detached: that span
        # (kept by consume_scope) is still the parent.
        parent = self._current_span or trace.get_current_span()
        parent_context = parent.get_span_context()
        if parent_context.is_valid and not parent.is_recording():
            _PROPAGATOR.inject(msg.headers, context=trace.set_span_in_context(parent, _EMPTY))
            return await call_next(msg)
        span = self._tracer.start_span(
            f"{msg.destination} publish",
            context=trace.set_span_in_context(parent, _EMPTY) if parent_context.is_valid else _EMPTY,
            kind=trace.SpanKind.PRODUCER,
        )
        _PROPAGATOR.inject(msg.headers, context=trace.set_span_in_context(span, _EMPTY))
        if not span.is_recording():  # a new trace the sampler left out
            return await call_next(msg)
        span.set_attributes(
            {
                "messaging.system": "kafka",
                "messaging.operation": "publish",
                "messaging.destination.name": msg.destination,
            }
        )
        if isinstance(msg.key, bytes):
            span.set_attribute("messaging.kafka.message.key", msg.key.decode("utf-8", "replace"))
        try:
            return await call_next(msg)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
            raise
        finally:
            span.end()
