"""Load test with locust: the seed's 100 concurrent users against a `jorge up`-like stack.

What it runs: the embedded stack (or the services given by URL, as every benchmark), a fresh
database with the demo catalog, the gateway and the qualifier, matcher and seller analyzer as
real processes on loopback; then `locust --headless` with bench/locustfile.py: ``--users``
integrators (100), each with an API key of its own under the default per-key limits (10/s,
100/min; the organisation's limits are raised so that 100 keys of one organisation fit), each
doing about one request a second: qualify a lead and read it back, match a buyer, price a home.

It prints the aggregate and per-endpoint figures (requests, failures, req/s, p50/p95/p99 ms),
and exits 1 when failures are 5 % of requests or more (the seed's acceptance line). Every
non-success answer is a failure, 429s and 503s included.

Run from the repository root:
    .venv/bin/python -m bench.load_test [--users 100] [--spawn-rate 20] [--run-time 60s]
        [--gateway-workers 2] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.environment import bench_environment, log, run_main
from jorge_cli.demo_catalog import load_demo_catalog
from jorge_cli.service_process import REPO, ServiceProcess
from schemas.limits import LIMITS
from services.gateway.tenancy import TenancyStore

ACCEPTABLE_FAILURE_RATE = 0.05
WORKERS = ("qualifier", "matcher", "seller_analyzer")


async def run(args: argparse.Namespace) -> list[dict[str, str]]:
    """Set everything up, run locust, return its stats rows (the CSV's, Aggregated last)."""
    async with bench_environment() as env:
        organization = await env.create_organization()
        tenancy = TenancyStore(env.pool)
        for name, limit in LIMITS.items():
            if limit.scope == "organization":  # keys keep the defaults
                await tenancy.set_rate_limit(organization, name, 10_000_000)
        keys = [(await tenancy.issue_key(organization, f"load-{n}")).secret for n in range(args.users)]
        counts = await load_demo_catalog(env.pool, organization)
        log(f"demo catalog: {counts}")
        gateway = ServiceProcess.gateway(env.settings, env.work_dir)
        gateway.argv += ["--workers", str(args.gateway_workers)]
        services = [gateway] + [ServiceProcess.worker(w, env.settings, env.work_dir) for w in WORKERS]
        try:
            for service in services:
                await service.start()
            log(f"gateway on {gateway.base_url}; locust: {args.users} users for {args.run_time}")
            prefix = env.work_dir / "locust"
            argv = [sys.executable, "-m", "locust", "-f", str(REPO / "bench" / "locustfile.py"), "--headless",
                    "--only-summary", "-u", str(args.users), "-r", str(args.spawn_rate), "-t", args.run_time,
                    "--host", gateway.base_url, "--csv", str(prefix), "--loglevel", "WARNING"]  # fmt: skip
            await asyncio.to_thread(
                subprocess.run,  # our own interpreter, fixed argv
                argv,
                env={**gateway.env, "JORGE_LOAD_KEYS": ",".join(keys)},
                cwd=REPO,
                check=False,
            )
            text = await asyncio.to_thread(Path(f"{prefix}_stats.csv").read_text)
            return list(csv.DictReader(text.splitlines()))
        finally:
            for service in services:
                service.stop()


def summary(rows: list[dict[str, str]]) -> dict[str, Any]:
    """Figures per endpoint and in aggregate, and whether the failure rate is acceptable."""

    def figures(row: dict[str, str]) -> dict[str, Any]:
        requests, failures = int(row["Request Count"]), int(row["Failure Count"])
        return {
            "requests": requests,
            "failures": failures,
            "failure_rate": failures / requests if requests else 0.0,
            "req_per_s": round(float(row["Requests/s"]), 1),
            "p50_ms": row["50%"],
            "p95_ms": row["95%"],
            "p99_ms": row["99%"],
        }

    result = {f"{r['Type']} {r['Name']}".strip(): figures(r) for r in rows}
    total = result.get("Aggregated", {"failure_rate": 1.0})
    return {"endpoints": result, "passed": total["failure_rate"] < ACCEPTABLE_FAILURE_RATE}


def render(result: dict[str, Any]) -> str:
    lines = [f"{'endpoint':<48} {'requests':>9} {'failures':>9} {'fail %':>7} {'req/s':>7} "
             f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}"]  # fmt: skip
    for name, f in result["endpoints"].items():
        lines.append(f"{name:<48} {f['requests']:>9} {f['failures']:>9} {100 * f['failure_rate']:>6.2f}% "
                     f"{f['req_per_s']:>7} {f['p50_ms']:>7} {f['p95_ms']:>7} {f['p99_ms']:>7}")  # fmt: skip
    verdict = "PASS" if result["passed"] else "FAIL"
    lines.append(f"{verdict}: failures must stay under {100 * ACCEPTABLE_FAILURE_RATE:g} % of requests")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Locust load test of the gateway and workers.")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--spawn-rate", type=float, default=20)
    parser.add_argument("--run-time", default="60s")
    parser.add_argument("--gateway-workers", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    result = summary(asyncio.run(run(args)))
    print(json.dumps(result, indent=2) if args.json else render(result))
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    run_main(main)
