"""Webhook delivery: deliveries per second to a fast receiver, and lead-posted-to-webhook latency.

1. Throughput. A receiver process answers 204 at once. The FLOOR is plain httpx POSTs of the
   same signed-size body to it with the same number of requests in flight: what sending alone
   allows on this machine. The ENGINE is the real dispatcher (claims with leases in PostgreSQL,
   signing, the SSRF-checked sender, one attempt record per request) draining pre-stored
   deliveries spread over ``--endpoints`` endpoints of ``--endpoint-concurrency`` each.
   engine/floor is the share of bare sending the engine keeps.

2. Latency. The real gateway, rules qualifier and crm_sync run as processes; a receiver in
   this process subscribes to lead.qualified. Leads are posted at ``--rate`` per second; for
   each, the time from just before the POST to the webhook's arrival is measured, and, as the
   baseline, the time to the lead.qualified event on Kafka (read by a consumer in this
   process): webhook minus Kafka is what crm_sync adds.

Services: the embedded stack in a temporary directory unless KAFKA_BOOTSTRAP_SERVERS,
DATABASE_URL or REDIS_URL is set. Run from the repository root:
    .venv/bin/python -m bench.webhook_delivery [--deliveries 2000] [--leads 200] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer

from bench.environment import bench_environment, log
from jorge_cli.service_process import ServiceProcess
from jorge_cli.stack import free_port
from jorge_runtime.settings import Settings
from jorge_runtime.webhook_secrets import seal, webhook_secret_cipher
from jorge_runtime.worker import WorkerResources
from schemas.topics import LEAD_QUALIFIED, TopicNames
from schemas.webhooks import generate_secret, new_endpoint_id, new_message_id
from services.crm_sync.webhook_delivery.install import build_dispatcher
from services.crm_sync.webhook_delivery.payloads import encode
from services.crm_sync.webhook_delivery.repository import DeliveryRepository
from services.crm_sync.webhook_delivery.signing import webhook_headers
from services.gateway.tenancy import TenancyStore
from tests.support.webhook_receiver import Answer, Receiver

PAYLOAD = {
    "event": "lead.qualified",
    "timestamp": "2026-11-23T12:00:00Z",
    "data": {
        "lead_id": "lead-001",
        "qualification_id": "qual-001",
        "intent": "buyer_intent",
        "temperature": "hot",
    },
}


def percentiles(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49], 1), "p95": round(cuts[94], 1), "p99": round(cuts[98], 1)}


class Null:
    """The endpoint-disabled publisher, unused here (the receiver never answers 410)."""

    async def publish(self, message: object) -> None:
        return None


async def serve_forever(port: int) -> None:
    """The fast receiver: answers 204 to every request, keep-alive (run as its own process so it
    does not share the engine's event loop)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readline():
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


async def wait_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def floor_rate(url: str, count: int, clients: int, per_client: int) -> float:
    """Plain signed POSTs, ``clients`` pools of ``per_client`` connections (as the engine has one
    pool per endpoint), all connections busy: deliveries per second."""
    body = encode(PAYLOAD)
    secret = generate_secret()
    queue = iter(range(count))

    async def worker(client: httpx.AsyncClient) -> None:
        for _ in queue:
            headers = webhook_headers([secret], new_message_id(), int(time.time()), body)
            response = await client.post(url, content=body, headers=headers)
            assert response.status_code == 204

    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    pools = [httpx.AsyncClient(limits=limits, trust_env=False) for _ in range(clients)]
    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker(pools[i % clients]) for i in range(clients * per_client)))
        return count / (time.perf_counter() - started)
    finally:
        for client in pools:
            await client.aclose()


async def engine_rate(
    settings: Settings, pool: asyncpg.Pool, url: str, count: int, endpoints: int, per_endpoint: int
) -> float:
    """The dispatcher draining ``count`` stored deliveries: deliveries per second."""
    organization = f"org-bench-{uuid.uuid4().hex[:8]}"
    await TenancyStore(pool).create_organization(organization, "Benchmark Realty")
    cipher = webhook_secret_cipher(settings.crm_credentials_key)
    assert cipher is not None
    for _ in range(endpoints):
        endpoint_id = new_endpoint_id()
        await pool.execute(
            """INSERT INTO webhook_endpoints (id, organization_id, url, events, secret_encrypted,
                                              max_concurrency)
               VALUES ($1, $2, $3, ARRAY['lead.qualified'], $4, $5)""",
            endpoint_id, organization, url, seal(cipher, endpoint_id, generate_secret()), per_endpoint,
        )  # fmt: skip
    async with pool.acquire() as conn:
        for _ in range(count // endpoints):
            await DeliveryRepository().fan_out(
                conn, organization_id=organization, event_type="lead.qualified",
                source_event_id=uuid.uuid4(), message_id=new_message_id(), payload=PAYLOAD,
            )  # fmt: skip
    total = (count // endpoints) * endpoints
    resources = WorkerResources(settings)
    await resources.open()
    dispatcher = build_dispatcher(settings, resources, Null())
    started = time.perf_counter()
    await dispatcher.start()
    try:
        while (  # noqa: ASYNC110 - polling the database
            done := await pool.fetchval(
                """SELECT count(*) FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
                    WHERE e.organization_id = $1 AND d.status = 'succeeded'""",
                organization,
            )
        ) < total:
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
    finally:
        await dispatcher.stop()
        await resources.close()
    log(f"engine: {done} deliveries in {elapsed:.2f}s")
    return total / elapsed


async def latency(
    settings: Settings, api_key: str, work_dir: Path, leads: int, rate: float
) -> dict[str, dict[str, float]]:
    """Lead posted -> lead.qualified on Kafka, and -> webhook received, in ms."""
    topics = TopicNames(settings.kafka_topic_prefix)
    processes = [
        ServiceProcess.gateway(settings, work_dir),
        ServiceProcess.worker("qualifier", settings, work_dir),
        ServiceProcess.worker("crm_sync", settings, work_dir),
    ]
    kafka_seen: dict[str, float] = {}
    hook_seen: dict[str, float] = {}

    def on_hook(n: int, request: Any) -> Answer:
        hook_seen[json.loads(request.body)["data"]["lead_id"]] = request.at
        return Answer(204, body=b"")

    consumer = AIOKafkaConsumer(
        topics(LEAD_QUALIFIED),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"bench-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=5,  # see each event as soon as it is written: a floor, not a peer
    )

    async def read_kafka() -> None:
        async for record in consumer:
            kafka_seen[record.key.decode()] = time.monotonic()

    try:
        for process in processes:
            await process.start()
        gateway = processes[0]
        await consumer.start()
        reader = asyncio.create_task(read_kafka())
        async with (
            Receiver(on_hook) as rx,
            httpx.AsyncClient(
                base_url=gateway.base_url, headers={"Authorization": f"Bearer {api_key}"}
            ) as http,
        ):
            response = await http.post(
                "/v1/webhooks/register", json={"url": rx.url(), "events": ["lead.qualified"]}
            )
            assert response.status_code == 201, response.text

            async def post(lead_id: str) -> float:
                started = time.monotonic()
                body = {"lead_id": lead_id, "phone": "+19095550143",
                        "message": "Pre-approved, 3 bed in Victoria within 2 months"}  # fmt: skip
                answer = await http.post("/v1/leads/qualify", json=body)
                assert answer.status_code == 201, answer.text
                return started

            log("warming up (consumer groups join)")
            await post("warmup-0")
            while "warmup-0" not in hook_seen:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            log(f"posting {leads} leads at {rate:g}/s")
            posted: dict[str, float] = {}
            tasks = []
            for n in range(leads):
                lead_id = f"lead-{n:05d}"
                tasks.append((lead_id, asyncio.create_task(post(lead_id))))
                await asyncio.sleep(1 / rate)
            for lead_id, task in tasks:
                posted[lead_id] = await task
            deadline = time.monotonic() + 60
            while len([k for k in posted if k in hook_seen]) < leads and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        reader.cancel()
    finally:
        await consumer.stop()
        for process in reversed(processes):
            process.stop()
    missing = [k for k in posted if k not in hook_seen]
    if missing:
        log(f"{len(missing)} webhooks missing")
    return {
        "kafka_ms": percentiles([(kafka_seen[k] - t) * 1000 for k, t in posted.items() if k in kafka_seen]),
        "webhook_ms": percentiles([(hook_seen[k] - t) * 1000 for k, t in posted.items() if k in hook_seen]),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    in_flight = args.endpoints * args.endpoint_concurrency
    async with bench_environment(
        webhook_allowed_subnets="127.0.0.0/8", webhook_max_in_flight=in_flight, database_pool_size=20
    ) as env:
        receiver: asyncio.subprocess.Process | None = None
        try:
            port = free_port()
            receiver = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.webhook_delivery", "--serve", str(port)
            )
            await wait_listening(port)
            url = f"http://127.0.0.1:{port}/hook"
            await floor_rate(url, 200, args.endpoints, args.endpoint_concurrency)  # warm-up
            floor_dps = await floor_rate(url, args.deliveries, args.endpoints, args.endpoint_concurrency)
            log(f"floor: {floor_dps:.0f} deliveries/s")
            engine_dps = await engine_rate(
                env.settings, env.pool, url, args.deliveries, args.endpoints, args.endpoint_concurrency
            )
            api_key = await env.issue_api_key(f"org-bench-{env.run_id}")
            figures = await latency(env.settings, api_key, env.work_dir, args.leads, args.rate)
        finally:
            if receiver is not None:
                receiver.terminate()
                await receiver.wait()
    return {
        "benchmark": "webhook_delivery",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "deliveries": args.deliveries,
        "in_flight": in_flight,
        "floor_deliveries_per_s": round(floor_dps),
        "engine_deliveries_per_s": round(engine_dps),
        "engine_vs_floor": round(engine_dps / floor_dps, 2),
        "leads": args.leads,
        "rate_per_s": args.rate,
        **figures,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.webhook_delivery", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--endpoints", type=int, default=4)
    parser.add_argument("--endpoint-concurrency", type=int, default=10)
    parser.add_argument("--leads", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="leads posted per second")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve_forever(args.serve))
        return
    report = asyncio.run(run(args))
    if args.json:
        print(json.dumps(report))
        return
    print(f"deliveries/s to a fast receiver ({report['in_flight']} in flight, {args.deliveries} deliveries):")
    print(f"  floor (bare signed POSTs)  {report['floor_deliveries_per_s']:>7}")
    print(f"  engine (dispatcher)        {report['engine_deliveries_per_s']:>7}   engine/floor "
          f"{report['engine_vs_floor']}x")  # fmt: skip
    print(f"lead posted -> received, {args.leads} leads at {args.rate:g}/s, rules qualifier (ms):")
    for name in ("kafka_ms", "webhook_ms"):
        p = report[name]
        label = "lead.qualified on Kafka" if name == "kafka_ms" else "webhook received"
        print(f"  {label:<24} p50 {p['p50']:>7}  p95 {p['p95']:>7}  p99 {p['p99']:>7}")


if __name__ == "__main__":
    main()
