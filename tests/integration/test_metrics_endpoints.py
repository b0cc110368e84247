"""Each service's /metrics after real traffic: every metric the rules and dashboard read is there.

The gateway runs with two uvicorn workers (prometheus_client multiprocess mode), each worker as
one process, crm_sync against the GHL sandbox; traffic is real HTTP (buyer leads, which the
matcher also ranks homes for, and a seller analysis) and a poison Kafka message. To cover
another worker, add it to SCRAPED_WORKERS with the metrics it must have produced.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pydantic import SecretStr

from jorge_cli.demo_catalog import load_demo_catalog
from jorge_runtime.settings import Settings
from schemas.topics import DEAD_LETTER, LEAD_QUALIFICATION_REQUESTED, TopicNames
from tests.support.ghl import Sandbox
from tests.support.monitoring import queried_metric_names
from tests.support.services import ServiceProcess, produce

GATEWAY_WORKERS = 2
SELLER_HOME = {
    "seller_id": "seller-metrics",
    "property_address": "456 Oak Ave, Rancho Cucamonga, CA",
    "bedrooms": 4,
    "bathrooms": 2.5,
    "square_feet": 2500,
    "condition": "good",
}
POOL_SIZE = 3
# Metrics each process must have SAMPLES of after the traffic below (not only a declaration).
GATEWAY_PRODUCES = {
    "jorge_api_requests_total",
    "jorge_api_errors_total",
    "jorge_api_duration_seconds_bucket",
    "jorge_cache_hits_total",
    "jorge_cache_misses_total",
    "jorge_db_pool_active_connections",
    "jorge_db_pool_max_connections",
    "jorge_db_query_duration_seconds_bucket",
    "jorge_external_service_up",
    "faststream_published_messages_total",
    "jorge_kafka_consumer_lag",
    "jorge_kafka_topic_messages",
    "jorge_kafka_lag_exporter_up",
}
SCRAPED_WORKERS: dict[str, set[str]] = {
    "qualifier": {
        "jorge_leads_qualified_total",
        "jorge_messages_processed_total",
        "jorge_dead_lettered_total",
        "jorge_db_pool_active_connections",
        "jorge_db_pool_max_connections",
        "jorge_db_query_duration_seconds_bucket",
        "jorge_external_service_up",
        "faststream_received_messages_total",
        "faststream_received_processed_messages_duration_seconds_bucket",
    },
    "matcher": {"jorge_buyers_matched_total", "jorge_messages_processed_total"},
    "seller_analyzer": {"jorge_sellers_analyzed_total", "jorge_messages_processed_total"},
    "crm_sync": {
        "jorge_ghl_requests_total",
        "jorge_ghl_request_duration_seconds_bucket",
        "jorge_ghl_budget_remaining",
        "jorge_db_pool_max_connections",
    },
}


@pytest.fixture
async def observed(settings: Settings, sandbox: Sandbox, organization: str, pool: asyncpg.Pool) -> Settings:
    await load_demo_catalog(pool, organization)
    return settings.model_copy(
        update={
            "kafka_lag_interval_seconds": 0.5,
            "metrics_refresh_seconds": 0.5,
            "database_pool_size": POOL_SIZE,
            "ghl_base_url": sandbox.url,
            "ghl_token": SecretStr(f"token-{organization}"),
            "ghl_organization": organization,
            "ghl_location_id": f"location-{uuid.uuid4().hex[:8]}",  # a GHL id: a bounded label
        }
    )


@pytest.fixture
async def services(
    observed: Settings, topics: TopicNames, log_dir: Path
) -> AsyncIterator[dict[str, ServiceProcess]]:
    gateway = ServiceProcess.gateway(observed, log_dir)
    gateway.argv += ["--workers", str(GATEWAY_WORKERS)]
    # The gateway's workers share it; the workers are one process each and must not.
    gateway.env["PROMETHEUS_MULTIPROC_DIR"] = str(log_dir / "prometheus")
    processes = {"gateway": gateway}
    processes |= {name: ServiceProcess.worker(name, observed, log_dir) for name in SCRAPED_WORKERS}
    try:
        await asyncio.gather(*(process.start() for process in processes.values()))
        yield processes
    finally:
        for process in processes.values():
            process.stop()


async def scrape(client: httpx.AsyncClient, base_url: str) -> dict[str, list[Sample]]:
    """Every sample of a /metrics answer, by sample name."""
    response = await client.get(f"{base_url}/metrics")
    assert response.status_code == 200
    samples: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def total(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    return sum(s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))


async def test_metrics_after_real_traffic(
    services: dict[str, ServiceProcess], observed: Settings, topics: TopicNames, api_key: str
) -> None:
    gateway = services["gateway"].base_url
    run = uuid.uuid4().hex[:8]
    leads = [f"lead-m{run}-{i}" for i in range(3)]
    phone = "+1 909 555 0143"
    sent = 0
    # A new connection per request, so that both uvicorn workers answer some.
    async with httpx.AsyncClient(
        timeout=10,
        headers={"Authorization": f"Bearer {api_key}"},
        limits=httpx.Limits(max_keepalive_connections=0),
    ) as client:
        for lead_id in leads:
            body = {"lead_id": lead_id, "name": "Ana", "phone": phone, "email": f"{lead_id}@example.com"}
            message = "Pre-approved, looking to buy a 3 bed in Rancho Cucamonga up to $800k"
            response = await client.post(f"{gateway}/v1/leads/qualify", json={**body, "message": message})
            assert response.status_code == 201, response.text
            sent += 1
        response = await client.post(f"{gateway}/v1/sellers/analyze", json=SELLER_HOME)
        assert response.status_code == 202, response.text
        sent += 1
        response = await client.post(f"{gateway}/v1/leads/qualify", json={"lead_id": "bad id"})
        assert response.status_code == 422
        response = await client.get(f"{gateway}/v1/leads/{leads[0]}x/qualification")
        assert response.status_code == 404
        response = await client.get(
            f"{gateway}/v1/leads/{leads[0]}/qualification", headers={"Authorization": ""}
        )
        assert response.status_code == 401
        sent += 3
        # Readiness probes (every 10 s in deploy/k8s) feed jorge_external_service_up.
        assert (await client.get(f"{gateway}/health/detailed")).status_code == 200

        # A poison message: the qualifier dead-letters it.
        assert observed.kafka_bootstrap_servers
        await produce(observed.kafka_bootstrap_servers, topics(LEAD_QUALIFICATION_REQUESTED), b"{}", key="x")

        deadline = time.monotonic() + 30
        while True:
            gw = await scrape(client, gateway)
            workers = {
                name: await scrape(client, p.base_url) for name, p in services.items() if name != "gateway"
            }
            qualifier = workers["qualifier"]
            done = (
                total(gw, "jorge_api_requests_total") == sent
                and total(workers["matcher"], "jorge_buyers_matched_total") >= len(leads)
                and total(workers["seller_analyzer"], "jorge_sellers_analyzed_total") == 1
                and total(workers["crm_sync"], "jorge_ghl_requests_total") > 0
                and total(qualifier, "jorge_leads_qualified_total") == len(leads)
                and total(qualifier, "jorge_dead_lettered_total") == 1
                and total(gw, "jorge_kafka_topic_messages", topic=topics(DEAD_LETTER)) == 1
                and total(gw, "jorge_kafka_consumer_lag") == 0
                and any(s.labels["topic"] == topics(LEAD_QUALIFICATION_REQUESTED)
                        for s in gw.get("jorge_kafka_consumer_lag", []))
            )  # fmt: skip
            if done:
                break
            assert time.monotonic() < deadline, {
                "requests": total(gw, "jorge_api_requests_total"),
                "qualified": total(qualifier, "jorge_leads_qualified_total"),
                "matched": total(workers["matcher"], "jorge_buyers_matched_total"),
                "analyzed": total(workers["seller_analyzer"], "jorge_sellers_analyzed_total"),
                "ghl": total(workers["crm_sync"], "jorge_ghl_requests_total"),
                "dead_lettered": total(qualifier, "jorge_dead_lettered_total"),
                "lag": gw.get("jorge_kafka_consumer_lag"),
                "depth": gw.get("jorge_kafka_topic_messages"),
            }
            await asyncio.sleep(0.3)

    # Multiprocess mode: whichever worker answered, the figures are both workers' sums.
    assert total(gw, "jorge_db_pool_max_connections", service="gateway") == GATEWAY_WORKERS * POOL_SIZE
    assert total(gw, "jorge_api_requests_total", route="/v1/leads/qualify", status="201") == len(leads)
    assert total(gw, "jorge_api_requests_total", route="/v1/leads/{lead_id}/qualification") == 2
    assert total(gw, "jorge_api_errors_total", status="422", error="validation_error") == 1
    assert total(gw, "jorge_api_errors_total", status="404", error="qualification_not_found") == 1
    assert total(gw, "jorge_api_errors_total", status="401") == 0  # auth refusals are not errors
    assert total(gw, "jorge_cache_hits_total", cache="api_key") + total(gw, "jorge_cache_misses_total") >= 5
    assert total(gw, "jorge_external_service_up", service="gateway", dependency="database") == 1
    assert total(qualifier, "jorge_messages_processed_total", outcome="ok") == len(leads)
    assert total(qualifier, "jorge_dead_lettered_total", reason="invalid_message") == 1

    missing = {"gateway": GATEWAY_PRODUCES - gw.keys()}
    missing |= {name: wanted - workers[name].keys() for name, wanted in SCRAPED_WORKERS.items()}
    assert not any(missing.values()), missing

    # What the rules and the dashboard query is exported somewhere (declared by every process).
    declared = {_family(name) for name in (await _declared(gateway)) | (await _declared_worker(services))}
    queried = {_family(name) for name in queried_metric_names()}
    assert not queried - declared, queried - declared

    # Bounded labels: no lead id, phone, email, organisation or key in any label of any service.
    forbidden = re.compile(r"lead-m|@|555|\+1|org-|jk_|qual-")
    for samples in (gw, *workers.values()):
        for sample in (s for found in samples.values() for s in found):
            assert not any(forbidden.search(v) for v in sample.labels.values()), sample


def _family(sample_name: str) -> str:
    return re.sub(r"_(bucket|sum|count|total|created)$", "", sample_name)


async def _declared(base_url: str) -> set[str]:
    async with httpx.AsyncClient(timeout=10) as client:
        return set((await scrape(client, base_url)).keys()) | await _help_names(client, base_url)


async def _declared_worker(services: dict[str, ServiceProcess]) -> set[str]:
    names: set[str] = set()
    async with httpx.AsyncClient(timeout=10) as client:
        for name, process in services.items():
            if name != "gateway":
                names |= await _help_names(client, process.base_url)
    return names


async def _help_names(client: httpx.AsyncClient, base_url: str) -> set[str]:
    """Names declared with # HELP (a labelled metric with no sample yet is declared only)."""
    text = (await client.get(f"{base_url}/metrics")).text
    return {line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")}
