-- Observability (issue 7): the W3C trace context (traceparent, tracestate) of the event a
-- webhook message was made from, so every delivery attempt, made later by the dispatcher,
-- joins that event's trace. Null when tracing is off, and for test events.
ALTER TABLE webhook_messages ADD COLUMN trace_context jsonb;
