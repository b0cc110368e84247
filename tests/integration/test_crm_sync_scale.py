"""1,000 qualified leads through three crm_sync replicas, with 429 storms, 5xx bursts, upserts
that create but answer 422, and one replica killed mid-run: every lead ends as exactly one
contact with the right tags and one note, and only hot leads get an opportunity."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
from pydantic import SecretStr

from jorge_runtime.settings import Settings
from schemas.topics import TopicNames
from tests.support.ghl import Sandbox, publish_qualified, qualified_event
from tests.support.services import ServiceProcess

TOTAL = 1000


def is_hot(n: int) -> bool:
    return n % 3 == 0


async def test_a_thousand_leads_through_three_replicas_with_faults_and_a_crash(
    settings: Settings, topics: TopicNames, pool: asyncpg.Pool, organization: str, tmp_path: Path
) -> None:
    assert settings.kafka_bootstrap_servers
    # The sandbox's limits are raised to keep the suite fast; the budget learns them from headers.
    async with Sandbox.running(tmp_path / "ghl.log", burst=200, interval_ms=500) as sandbox:
        location = f"loc-{organization}"
        crm = settings.model_copy(
            update={
                "ghl_base_url": sandbox.url,
                "ghl_token": SecretStr(f"token-{organization}"),
                "ghl_organization": organization,
                "ghl_location_id": location,
                "ghl_pipeline_id": "pipeline-buyers",
                "ghl_budget_burst": 100,
                "ghl_budget_interval_ms": 1000,
                "ghl_budget_margin_ms": 150,  # grant-to-arrival time on a loaded CI machine
                "crm_retry_delays_seconds": "0.2,0.5,1,1,1",
                "crm_max_attempts": 30,
            }
        )
        replicas = []
        for i in range(3):
            (tmp_path / f"r{i}").mkdir()
            replicas.append(ServiceProcess.worker("crm_sync", crm, tmp_path / f"r{i}"))
        try:
            await asyncio.gather(*(r.start() for r in replicas))
            await sandbox.faults(storm_429=10, burst_5xx=30, rate_5xx=0.01, rate_422_created=0.01)
            events = [qualified_event(organization, n, hot=is_hot(n)) for n in range(TOTAL)]
            await publish_qualified(settings.kafka_bootstrap_servers, topics, events)

            async def synced() -> int:
                return int(
                    await pool.fetchval(
                        "SELECT count(*) FROM processed_events p JOIN unnest($1::uuid[]) e ON e = p.event_id "
                        "WHERE p.consumer = 'crm_sync.ghl'",
                        [e.event_id for e in events],
                    )
                )

            deadline = time.monotonic() + 210  # a loaded two-core CI machine; each lead is 4-6 GHL calls
            while (done := await synced()) < TOTAL // 4:
                assert time.monotonic() < deadline, f"only {done} synced"
                await asyncio.sleep(0.2)
            replicas[0].kill()  # a crash mid-run: no shutdown, no commit
            await sandbox.faults(storm_429=10, burst_5xx=20, rate_5xx=0.01, rate_422_created=0.01)
            await replicas[0].start()
            while (done := await synced()) < TOTAL:
                assert time.monotonic() < deadline, f"only {done} of {TOTAL} synced"
                await asyncio.sleep(0.3)

            contacts = await sandbox.contacts(location)
            stats = await sandbox.stats()
        finally:
            for replica in replicas:  # stop them together, not one graceful shutdown after another
                if replica.process and replica.process.poll() is None:
                    replica.process.terminate()
            for replica in replicas:
                replica.stop()

    by_email = {c["email"]: c for c in contacts}
    assert len(contacts) == TOTAL and len(by_email) == TOTAL
    for n in range(TOTAL):
        contact = by_email[f"lead{n}@example.com"]
        hot = is_hot(n)
        temperature = "hot" if hot else "cold"
        assert set(contact["tags"]) == {
            "jorge",
            "intent:buyer_intent",
            f"temperature:{temperature}",
            "source:zillow",
        }, n
        assert len(contact["notes"]) == 1, (n, contact["notes"])
        assert len(contact["opportunities"]) == (1 if hot else 0), n
    assert stats["injected_429"] >= 20 and stats["injected_5xx"] >= 30
    assert stats["injected_422_created"] >= 1  # created, answered 422: still one contact each
    assert stats.get("rate_limited", 0) == 0  # every 429 was injected, none caused by our traffic
    mapped = await pool.fetchval("SELECT count(*) FROM crm_contacts WHERE organization_id = $1", organization)
    assert mapped == TOTAL
