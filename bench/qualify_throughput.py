"""Throughput and latency of POST /v1/leads/qualify against a floor measured in the same run.

What it measures: the real gateway (`python -m jorge_cli gateway`, one uvicorn process) with
authentication, validation, the PostgreSQL transaction and the acks=all Kafka publish, and a
FLOOR app (`bench.floor_app`, one uvicorn process) that only publishes one message of the same
size with the same producer settings to the same broker and answers 201. Both get the same
requests (same bodies, same headers, a distinct lead_id each) from ``--concurrency`` httpx
AsyncClients of one keep-alive connection each (one shared pool of that size with
``--shared-pool``, which is slower: see bench/README.md), after a warm-up that is not counted.
The floor is measured first, then the gateway; only one target is under load at a time.

How to read the ratios (gateway / floor): for throughput, the share of the floor the gateway
reaches (0.40 = the gateway serves 40 % of the requests per second that publishing alone
allows); for each latency percentile, how many times longer a gateway request takes than a
bare publish (2.5 = two and a half times the floor). The floor is not a hard limit of the
machine: it is "FastAPI + one acks=all publish" on the same broker, client and cores, so
the ratio is what the gateway's own work costs on top of that.

Services: the embedded stack (Tansu, PostgreSQL, Redis in a temporary directory) unless
KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL or REDIS_URL is set; each one missing is embedded.
A fresh database (created, migrated, dropped at the end) and a unique topic prefix are used.
The gateway otherwise runs with the settings found in the environment and .env, as `jorge
gateway` would (e.g. DATABASE_POOL_SIZE, 10 by default, caps its transactions in flight).

Run from the repository root:
    .venv/bin/python -m bench.qualify_throughput [--requests N] [--concurrency C] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.environment import bench_environment, log, run_main
from jorge_cli.service_process import ServiceProcess, settings_env
from jorge_cli.stack import free_port
from jorge_runtime.kafka.broker import event_message
from schemas.leads import (
    LeadQualificationRequested,
    LeadQualificationRequestedPayload,
    LeadToQualify,
    QualifyLeadRequest,
    new_qualification_id,
)
from schemas.topics import LEAD_QUALIFICATION_REQUESTED

FLOOR_TOPIC = "bench.floor"
QUALIFY_PATH = "/v1/leads/qualify"
FLOOR_PATH = "/publish"
_LEAD = {
    "name": "Maria Lopez",
    "phone": "+1 (909) 555-0143",
    "email": "maria@example.com",
    "message": "Pre-approved for $750k, looking for a 3 bed in Victoria within 2 months",
    "source": "bench",
}


@dataclass(frozen=True)
class Load:
    """The requests sent to each target."""

    requests: int
    concurrency: int
    warmup: int
    shared_pool: bool = False


@dataclass
class TargetResult:
    """What one target did during the measured phase (the warm-up is not included)."""

    name: str
    requests: int
    concurrency: int
    elapsed_s: float
    latencies_ms: list[float] = field(repr=False)
    errors: Counter[str] = field(default_factory=Counter)
    client_cpu_s: float = math.nan
    server_cpu_s: float = math.nan

    @property
    def ok(self) -> int:
        """Requests answered with a 2xx status."""
        return len(self.latencies_ms)

    @property
    def throughput(self) -> float:
        """Successful requests per second of wall time."""
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else math.nan

    def percentiles(self) -> dict[str, float]:
        """p50, p95 and p99 of the successful requests' latencies in ms (NaN if under two)."""
        if len(self.latencies_ms) < 2:
            return {"p50": math.nan, "p95": math.nan, "p99": math.nan}
        cuts = statistics.quantiles(self.latencies_ms, n=100, method="inclusive")
        return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}

    def cpu_ms_per_request(self) -> dict[str, float]:
        """CPU time per measured request of the load generator and of the server process, in ms."""
        return {
            "client": self.client_cpu_s * 1000 / self.requests,
            "server": self.server_cpu_s * 1000 / self.requests,
        }

    def summary(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict (NaN becomes null)."""
        figures = {
            "throughput_rps": self.throughput,
            **{f"{k}_ms": v for k, v in self.percentiles().items()},
            **{f"{k}_cpu_ms_per_request": v for k, v in self.cpu_ms_per_request().items()},
        }
        return {
            "requests": self.requests,
            "ok": self.ok,
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors),
            "elapsed_s": round(self.elapsed_s, 3),
            **{k: _finite(v) for k, v in figures.items()},
        }


def _finite(value: float) -> float | None:
    return round(value, 3) if math.isfinite(value) else None


def ratios(gateway: TargetResult, floor: TargetResult) -> dict[str, float | None]:
    """gateway / floor for throughput and each latency percentile (null when undefined)."""

    def ratio(a: float, b: float) -> float | None:
        return _finite(a / b) if b and math.isfinite(a) and math.isfinite(b) else None

    gp, fp = gateway.percentiles(), floor.percentiles()
    return {
        "throughput": ratio(gateway.throughput, floor.throughput),
        **{k: ratio(gp[k], fp[k]) for k in ("p50", "p95", "p99")},
    }


def request_body(lead_id: str) -> bytes:
    """The JSON body of one qualify request; the floor receives the same bytes."""
    return json.dumps({"lead_id": lead_id, **_LEAD}).encode()


def gateway_message_bytes() -> int:
    """Size of the Kafka message body the gateway publishes for one request of this benchmark."""
    lead = QualifyLeadRequest.model_validate({"lead_id": f"bench-{uuid.uuid4().hex[:8]}-w-00000", **_LEAD})
    event = LeadQualificationRequested(
        organization_id=f"org-bench-{uuid.uuid4().hex[:8]}",
        correlation_id=f"req-{uuid.uuid4().hex}",
        payload=LeadQualificationRequestedPayload(
            qualification_id=new_qualification_id(), lead=LeadToQualify.model_validate(lead.model_dump())
        ),
    )
    return len(event_message(event, topic="t", key=lead.lead_id).body)


async def drive(
    name: str,
    url: str,
    headers: dict[str, str],
    bodies: list[bytes],
    concurrency: int,
    *,
    shared_pool: bool = False,
    server_pid: int | None = None,
) -> TargetResult:
    """POST every body to ``url`` with ``concurrency`` requests in flight; time each one.

    Each of the ``concurrency`` worker tasks has its own AsyncClient holding one connection
    (``concurrency`` connections in all), so no request waits for a connection. With
    ``shared_pool`` they share one AsyncClient whose pool holds ``concurrency`` connections
    instead: httpcore scans its whole pool on every request, which makes the client, not the
    server, the bottleneck from about 16 connections up (see bench/README.md).
    """
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    queue = iter(bodies)

    async def worker(client: httpx.AsyncClient) -> None:
        for body in queue:  # a shared iterator: each body is sent exactly once
            started = time.perf_counter()
            try:
                response = await client.post(url, content=body)
            except httpx.HTTPError as exc:
                errors[f"{type(exc).__name__}: {exc}"[:200]] += 1
                continue
            elapsed_ms = (time.perf_counter() - started) * 1000
            if 200 <= response.status_code < 300:
                latencies.append(elapsed_ms)
            else:
                errors[f"{response.status_code} {response.text[:160]}"] += 1

    per_client = concurrency if shared_pool else 1
    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(limits=limits, timeout=30.0, headers=headers))
            for _ in range(1 if shared_pool else concurrency)
        ]
        cpu_before = client_cpu_seconds(), process_cpu_seconds(server_pid)
        started = time.perf_counter()
        await asyncio.gather(*(worker(clients[i % len(clients)]) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu_after = client_cpu_seconds(), process_cpu_seconds(server_pid)
    result = TargetResult(name, len(bodies), concurrency, elapsed, latencies, errors)
    result.client_cpu_s = cpu_after[0] - cpu_before[0]
    if cpu_before[1] is not None and cpu_after[1] is not None:
        result.server_cpu_s = cpu_after[1] - cpu_before[1]
    return result


def client_cpu_seconds() -> float:
    """CPU time (user + system) this process has used: the load generator's cost."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int | None) -> float | None:
    """CPU time (user + system) of process ``pid`` from /proc, or None where /proc is missing."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    name: str,
    url: str,
    headers: dict[str, str],
    lead_ids: Callable[[str, int], list[str]],
    load: Load,
    server_pid: int | None,
) -> TargetResult:
    """Warm ``url`` up (uncounted), then measure ``load.requests`` requests at ``load.concurrency``."""
    concurrency = load.concurrency
    options: dict[str, Any] = {"shared_pool": load.shared_pool, "server_pid": server_pid}
    if load.warmup:
        log(f"{name}: warm-up, {load.warmup} requests")
        bodies = [request_body(i) for i in lead_ids("w", load.warmup)]
        warm = await drive(name, url, headers, bodies, concurrency, **options)
        if warm.errors:
            log(f"{name}: {sum(warm.errors.values())} errors during warm-up: {dict(warm.errors)}")
    log(f"{name}: measuring, {load.requests} requests at concurrency {concurrency}")
    bodies = [request_body(i) for i in lead_ids("m", load.requests)]
    result = await drive(name, url, headers, bodies, concurrency, **options)
    log(f"{name}: {result.throughput:.1f} req/s, {sum(result.errors.values())} errors")
    return result


def render_table(floor: TargetResult, gateway: TargetResult) -> str:
    """The human-readable result: one row per target, one of ratios, then any errors.

    The two CPU columns are milliseconds of CPU per measured request spent by the server
    process and by the load generator (this process); the broker, PostgreSQL and Redis are
    not counted.
    """

    def num(value: float | None, spec: str) -> str:
        return format(value, spec) if value is not None and math.isfinite(value) else "n/a"

    columns = ("req/s", "p50 ms", "p95 ms", "p99 ms", "ok", "errors", "srv cpu", "cli cpu")
    lines = [f"{'target':<10}" + "".join(f"{c:>10}" for c in columns)]
    for result in (floor, gateway):
        p, cpu = result.percentiles(), result.cpu_ms_per_request()
        cells = (
            num(result.throughput, ".1f"),
            *(num(p[k], ".1f") for k in ("p50", "p95", "p99")),
            str(result.ok),
            str(sum(result.errors.values())),
            num(cpu["server"], ".2f"),
            num(cpu["client"], ".2f"),
        )
        lines.append(f"{result.name:<10}" + "".join(f"{c:>10}" for c in cells))
    r = ratios(gateway, floor)
    lines.append(
        f"{'gw/floor':<10}"
        + "".join(f"{num(r[k], '.2f') + 'x':>10}" for k in ("throughput", "p50", "p95", "p99"))
    )
    lines.append("(cpu columns: ms of CPU per request, server process and load generator)")
    for result in (floor, gateway):
        for kind, count in result.errors.most_common():
            lines.append(f"{result.name} error x{count}: {kind}")
    return "\n".join(lines)


def _pid(service: ServiceProcess) -> int | None:
    return service.process.pid if service.process else None


async def run_benchmark(load: Load) -> tuple[TargetResult, TargetResult, dict[str, str | None]]:
    """Prepare a database, topics and a key, start both apps, measure the floor then the gateway.

    Returns the floor's and the gateway's results and which services were given by URL.
    """
    partitions = LEAD_QUALIFICATION_REQUESTED.partitions
    async with bench_environment(extra_topics={FLOOR_TOPIC: partitions}) as env:
        settings, work_dir, run_id = env.settings, env.work_dir, env.run_id
        api_key = await env.issue_api_key()
        gateway = ServiceProcess.gateway(settings, work_dir)
        floor_port = free_port()
        floor = ServiceProcess(
            [sys.executable, "-m", "bench.floor_app"],
            settings_env(settings)
            | {
                "FLOOR_PORT": str(floor_port),
                "FLOOR_TOPIC": env.topics.prefix + FLOOR_TOPIC,
                "FLOOR_MESSAGE_BYTES": str(gateway_message_bytes()),
            },
            f"http://127.0.0.1:{floor_port}/health",
            f"http://127.0.0.1:{floor_port}",
            work_dir / "floor.log",
        )
        processes: list[ServiceProcess] = []
        try:
            for process in (gateway, floor):
                processes.append(process)
                await process.start()
            log(f"gateway on {gateway.base_url}, floor on {floor.base_url}")

            headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

            def lead_ids_for(target: str) -> Callable[[str, int], list[str]]:
                return lambda phase, n: [f"bench-{run_id}-{target}-{phase}-{i}" for i in range(n)]

            floor_result = await measure(
                "floor", floor.base_url + FLOOR_PATH, headers, lead_ids_for("f"), load, _pid(floor)
            )
            gateway_result = await measure(
                "gateway", gateway.base_url + QUALIFY_PATH, headers, lead_ids_for("g"), load, _pid(gateway)
            )
            return floor_result, gateway_result, env.given
        finally:
            for process in reversed(processes):
                process.stop()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.qualify_throughput",
        description="POST /v1/leads/qualify throughput and latency against a publish-only floor.",
    )
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per target")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (= connections)")
    parser.add_argument("--warmup", type=int, default=200, help="uncounted requests per target first")
    parser.add_argument(
        "--shared-pool",
        action="store_true",
        help="one AsyncClient with a pool of C connections instead of C clients of one connection "
        "(slower client: caps both targets from about 16 connections up)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    for name in ("requests", "concurrency"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be 0 or more")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark once and print a table, or one JSON object with --json."""
    args = parse_args(argv)
    load = Load(args.requests, args.concurrency, args.warmup, args.shared_pool)
    floor, gateway, given = asyncio.run(run_benchmark(load))

    if args.json:
        report = {
            "benchmark": "qualify_throughput",
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "requests": args.requests,
            "concurrency": args.concurrency,
            "warmup": args.warmup,
            "client": "shared pool" if args.shared_pool else "one client per connection",
            "cpus": os.cpu_count(),
            "services": {name: "given" if value else "embedded" for name, value in given.items()},
            "floor": floor.summary(),
            "gateway": gateway.summary(),
            "ratios": ratios(gateway, floor),
        }
        print(json.dumps(report))
    else:
        print(render_table(floor, gateway))


if __name__ == "__main__":
    run_main(main)
