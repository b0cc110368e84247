"""What metrics and tracing cost the gateway: POST /v1/leads/qualify with them off and on.

Three gateways run side by side on the same stack, database, topics and API key, each as one
uvicorn process, and are loaded one at a time, in rounds (off, metrics, metrics+tracing, then
again) so that drift of the shared machine spreads over all three:

- ``off``: METRICS_ENABLED=false (no HTTP metrics middleware, no FastStream Prometheus
  middleware) and no OTEL_EXPORTER_OTLP_ENDPOINT (no tracer, middleware or instrumentation).
  What stays on in every variant: the API-key cache counters, the per-statement database
  timer, the pool sampler and the lag monitor (each a few increments or a periodic task).
- ``metrics``: the production default: HTTP metrics and Kafka metrics, tracing off.
- ``metrics+tracing``: the default plus OTLP export of every span (server, PostgreSQL, Kafka
  publish) to a sink process (bench/otlp_sink.py) that discards them; sampling is on for
  every request (the SDK's default, parentbased_always_on), the worst case.
- ``metrics+tracing@10%``: the same with ``OTEL_TRACES_SAMPLER=parentbased_traceidratio`` and
  ``OTEL_TRACES_SAMPLER_ARG=0.1``: one request in ten is traced (and its worker spans with it).

Printed: median throughput and latency percentiles of each variant over the rounds, server CPU
per request, and the cost of each variant as a share of the ``off`` throughput.

Run from the repository root:
    .venv/bin/python -m bench.observability_cost [--requests 2000] [--concurrency 32] [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from datetime import UTC, datetime
from typing import Any

from bench.environment import bench_environment, run_main
from bench.qualify_throughput import QUALIFY_PATH, Load, TargetResult, measure
from jorge_cli.service_process import ServiceProcess
from jorge_cli.stack import free_port
from jorge_runtime.settings import Settings

VARIANTS = ("off", "metrics", "metrics+tracing", "metrics+tracing@10%")
# The SDK's own sampler variables: keep one trace in ten (child spans follow their parent).
SAMPLED_10 = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}


def variant_settings(base: Settings, variant: str, sink_url: str) -> Settings:
    """The gateway settings of one variant."""
    return base.model_copy(
        update={
            "metrics_enabled": variant != "off",
            "otel_exporter_otlp_endpoint": sink_url if variant.startswith("metrics+tracing") else None,
        }
    )


async def run(load: Load, rounds: int) -> dict[str, list[TargetResult]]:
    """Start the sink and the three gateways, then measure them in ``rounds`` rounds."""
    async with bench_environment() as env:
        base, work_dir, run_id = env.settings, env.work_dir, env.run_id
        api_key = await env.issue_api_key()
        processes: list[ServiceProcess] = []
        try:
            sink_port = free_port()
            sink = ServiceProcess(
                [sys.executable, "-m", "bench.otlp_sink", str(sink_port)],
                dict(os.environ),
                f"http://127.0.0.1:{sink_port}/",
                f"http://127.0.0.1:{sink_port}",
                work_dir / "sink.log",
            )
            processes.append(sink)
            await sink.start()
            gateways: dict[str, ServiceProcess] = {}
            for variant in VARIANTS:
                directory = work_dir / f"gateway-{len(gateways)}"
                directory.mkdir()
                gateway = ServiceProcess.gateway(variant_settings(base, variant, sink.base_url), directory)
                if variant.endswith("@10%"):
                    gateway.env |= SAMPLED_10
                processes.append(gateway)
                await gateway.start()
                gateways[variant] = gateway
            headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
            results: dict[str, list[TargetResult]] = {variant: [] for variant in VARIANTS}
            for round_number in range(rounds):
                for index, variant in enumerate(VARIANTS):
                    tag = f"r{round_number}v{index}"

                    def lead_ids(phase: str, n: int, tag: str = tag) -> list[str]:
                        return [f"bench-{run_id}-{tag}-{phase}-{i}" for i in range(n)]

                    gateway = gateways[variant]
                    pid = gateway.process.pid if gateway.process else None
                    results[variant].append(
                        await measure(variant, gateway.base_url + QUALIFY_PATH, headers, lead_ids, load, pid)
                    )
            return results
        finally:
            for process in reversed(processes):
                process.stop()


def summarize(results: dict[str, list[TargetResult]]) -> dict[str, dict[str, Any]]:
    """Median figures of each variant over the rounds, and its cost against ``off``."""
    summary: dict[str, dict[str, Any]] = {}
    for variant, runs in results.items():
        summary[variant] = {
            "throughput_rps": statistics.median(r.throughput for r in runs),
            **{f"{p}_ms": statistics.median(r.percentiles()[p] for r in runs) for p in ("p50", "p95", "p99")},
            "server_cpu_ms_per_request": statistics.median(r.cpu_ms_per_request()["server"] for r in runs),
            "errors": sum(sum(r.errors.values()) for r in runs),
            "rounds_rps": [round(r.throughput, 1) for r in runs],
        }
    off = summary["off"]["throughput_rps"]
    off_cpu = summary["off"]["server_cpu_ms_per_request"]
    for figures in summary.values():
        figures["throughput_cost_share"] = 1 - figures["throughput_rps"] / off if off else None
        # Steadier than throughput on a shared machine: extra gateway CPU per request.
        figures["cpu_cost_share"] = figures["server_cpu_ms_per_request"] / off_cpu - 1 if off_cpu else None
    return summary


def render(summary: dict[str, dict[str, Any]]) -> str:
    """A table: one row per variant."""
    lines = [
        f"{'variant':<21}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'srv cpu':>9}"
        f"{'cost':>8}{'cpu +':>8}"
        f"{'errors':>8}  rounds req/s"
    ]
    for variant, f in summary.items():
        lines.append(
            f"{variant:<21}{f['throughput_rps']:>9.1f}{f['p50_ms']:>9.1f}{f['p95_ms']:>9.1f}{f['p99_ms']:>9.1f}"
            f"{f['server_cpu_ms_per_request']:>9.2f}{f['throughput_cost_share']:>8.1%}{f['cpu_cost_share']:>8.1%}"
            f"{f['errors']:>8}  "
            f"{f['rounds_rps']}"
        )
    lines.append(
        "(cost: throughput lost against 'off'; srv cpu: ms of gateway CPU per request; "
        "cpu +: extra gateway CPU per request against 'off')"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse options, run on the embedded stack (or the given services), print the result."""
    parser = argparse.ArgumentParser(prog="python -m bench.observability_cost", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per variant and round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    load = Load(args.requests, args.concurrency, args.warmup)
    results = asyncio.run(run(load, args.rounds))
    summary = summarize(results)
    if args.json:
        print(
            json.dumps(
                {
                    "benchmark": "observability_cost",
                    "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "requests": args.requests,
                    "concurrency": args.concurrency,
                    "rounds": args.rounds,
                    "cpus": os.cpu_count(),
                    "variants": summary,
                }
            )
        )
    else:
        print(render(summary))


if __name__ == "__main__":
    run_main(main)
