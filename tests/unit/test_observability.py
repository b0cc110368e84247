"""Pure parts of observability: log correlation, route-template labels, lag arithmetic, switches."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY

from jorge_runtime.kafka.lag import partition_lag
from jorge_runtime.observability.logs import JsonFormatter
from jorge_runtime.observability.multiproc import prepare_multiprocess_dir
from jorge_runtime.observability.tracing import kafka_middlewares, setup_tracing, tracing_enabled
from jorge_runtime.settings import Settings
from services.gateway.metrics import HttpMetricsMiddleware, is_error


def _line(message: str) -> dict[str, object]:
    record = logging.makeLogRecord({"msg": message, "levelname": "INFO", "name": "t"})
    return json.loads(JsonFormatter("svc").format(record))


def test_log_lines_carry_the_current_span_ids_and_stay_redacted() -> None:
    tracer = TracerProvider().get_tracer("test")  # not installed globally: the context is enough
    with tracer.start_as_current_span("work") as span:
        entry = _line("call me at +1 909 555 0143")
    context = span.get_span_context()
    assert entry["trace_id"] == format(context.trace_id, "032x")
    assert entry["span_id"] == format(context.span_id, "016x")
    assert entry["message"] == "call me at [PHONE]"
    assert "trace_id" not in _line("outside any span")


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/leads/{lead_id}/qualification")
    async def read(lead_id: str) -> JSONResponse:
        return JSONResponse({"lead_id": lead_id}, status_code=404 if lead_id == "missing" else 200)

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(HttpMetricsMiddleware)
    return app


def _count(route: str, status: str) -> float:
    labels = {"method": "GET", "route": route, "status": status}
    return REGISTRY.get_sample_value("jorge_api_requests_total", labels) or 0.0


async def test_requests_are_labelled_by_route_template_never_raw_path() -> None:
    template = "/v1/leads/{lead_id}/qualification"
    before = {k: _count(*k) for k in [(template, "200"), (template, "404"), ("unmatched", "404"),
                                      ("/v1/boom", "500"), ("/health", "200")]}  # fmt: skip
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for lead in ("lead-a", "lead-b", "missing"):
            await client.get(f"/v1/leads/{lead}/qualification")
        await client.get("/v1/nowhere/7")
        await client.get("/v1/boom")
        await client.get("/health")
    after = {k: _count(*k) for k in before}
    assert {k: after[k] - before[k] for k in before} == {
        (template, "200"): 2,
        (template, "404"): 1,
        ("unmatched", "404"): 1,
        ("/v1/boom", "500"): 1,
        ("/health", "200"): 0,  # only API traffic is counted
    }
    raw = {"method": "GET", "route": "/v1/leads/lead-a/qualification", "status": "200"}
    assert REGISTRY.get_sample_value("jorge_api_requests_total", raw) is None


def test_auth_refusals_and_rate_limits_are_not_errors() -> None:
    assert [s for s in (200, 201, 400, 401, 403, 404, 409, 422, 429, 500, 503) if is_error(s)] == [
        400, 404, 409, 422, 500, 503
    ]  # fmt: skip


def test_partition_lag() -> None:
    assert partition_lag(end=10, committed=4, earliest=0) == 6
    assert partition_lag(end=10, committed=None, earliest=3) == 7  # never committed: all retained
    assert partition_lag(end=10, committed=1, earliest=5) == 5  # committed offset deleted by retention
    assert partition_lag(end=10, committed=10, earliest=0) == 0


def test_tracing_and_kafka_metrics_are_off_when_not_asked_for() -> None:
    settings = Settings(metrics_enabled=False, otel_exporter_otlp_endpoint=None)
    assert setup_tracing(settings, "test") is None
    assert not tracing_enabled(settings)
    assert kafka_middlewares(settings, "test") == []
    assert (
        len(kafka_middlewares(Settings(otel_exporter_otlp_endpoint=None), "test")) == 1
    )  # the Prometheus middleware only


def test_multiprocess_directory_is_emptied_of_metric_files_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    (tmp_path / "counter_1.db").write_bytes(b"x")
    (tmp_path / "keep.txt").write_text("x")
    assert prepare_multiprocess_dir(str(tmp_path)) == str(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    # Not monkeypatch.delenv: it would record the value just set and restore it afterwards,
    # and every later test's child processes would start in multiprocess mode.
    del os.environ["PROMETHEUS_MULTIPROC_DIR"]
