"""No organisation stalls another, on the real stack: one location's daily GHL budget is spent
while another organisation's leads flow through the same crm_sync, topics and partitions."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
from pydantic import SecretStr

from jorge_runtime.credential_cipher import CredentialCipher, generate_key
from jorge_runtime.settings import Settings
from schemas.leads import LeadQualified
from schemas.topics import TopicNames
from services.crm_sync.ghl.credential_store import CredentialStore
from services.gateway.tenancy import TenancyStore
from tests.support.ghl import Sandbox, publish_qualified, qualified_event
from tests.support.services import ServiceProcess

#: The busy organisation's leads (each: duplicate search, upsert, tags, note = 4 GHL requests).
#: 150 rather than 500, and a burst of 30 per second rather than GHL's 100 per 10 s: the same
#: property (the budget, not the other location, sets the pace) in under a minute on a loaded CI
#: machine. The full size (500 leads at GHL's real figures, lost, duplicated and self-caused
#: 429s counted) is `python -m bench.ghl_drain`'s two-location phase.
LEADS = 150
SPENT_LEADS = 4
BURST, INTERVAL_MS, MARGIN_MS = 30, 1000, 150


async def test_a_spent_location_parks_its_events_while_another_syncs_at_full_rate(
    settings: Settings,
    topics: TopicNames,
    pool: asyncpg.Pool,
    organization: str,
    sandbox: Sandbox,
    tmp_path: Path,
) -> None:
    bootstrap = settings.kafka_bootstrap_servers
    assert bootstrap
    busy, spent = organization, f"{organization}-spent"
    await TenancyStore(pool).create_organization(spent, "Spent Realty")
    key = SecretStr(generate_key())
    store = CredentialStore(pool, CredentialCipher(key))
    await store.save(busy, f"loc-{busy}", SecretStr(f"tok-{busy}"))
    await store.save(spent, f"loc-{spent}", SecretStr(f"tok-{spent}"))
    # The sandbox's limits are per location (here keyed by token): the spent location gets 8
    # requests per 10 s "day" (two leads' worth), the busy one 30 per second.
    await sandbox.limits(location=f"tok-{spent}", daily=8, daily_reset_ms=10_000)
    await sandbox.limits(location=f"tok-{busy}", burst=BURST, interval_ms=INTERVAL_MS)
    crm = settings.model_copy(
        update={
            "ghl_base_url": sandbox.url,
            "ghl_token": None,
            "crm_credentials_key": key,
            "ghl_budget_burst": BURST,
            "ghl_budget_interval_ms": INTERVAL_MS,
            "ghl_budget_margin_ms": MARGIN_MS,
            "ghl_budget_daily_probe_ms": 2_000,  # GHL does not say when its day ends: probe
            "crm_retry_delays_seconds": "0.5,1,2,4,8",
            "crm_max_attempts": 40,
        }
    )
    worker = ServiceProcess.worker("crm_sync", crm, tmp_path)
    await worker.start()
    spent_events = [qualified_event(spent, n, hot=False) for n in range(SPENT_LEADS)]
    busy_events = [qualified_event(busy, n, hot=False) for n in range(LEADS)]

    async def synced(events: list[LeadQualified]) -> int:
        return int(
            await pool.fetchval(
                "SELECT count(*) FROM processed_events p JOIN unnest($1::uuid[]) e ON e = p.event_id "
                "WHERE p.consumer = 'crm_sync.ghl'",
                [e.event_id for e in events],
            )
        )

    try:
        await publish_qualified(bootstrap, topics, spent_events)
        await publish_qualified(bootstrap, topics, busy_events)
        deadline = time.monotonic() + 85
        while (done := await synced(busy_events)) < LEADS:
            assert time.monotonic() < deadline, f"only {done} of the busy organisation's leads synced"
            await asyncio.sleep(0.3)
        spent_done_when_busy_done = await synced(spent_events)
        # The spent location's own wait (a GHL "day" and a probe) starts counting now: on a
        # loaded machine the busy leads may have used most of the first deadline.
        deadline = max(deadline, time.monotonic() + 45)
        while (done := await synced(spent_events)) < SPENT_LEADS:
            assert time.monotonic() < deadline, f"only {done} of the spent location's leads synced"
            await asyncio.sleep(0.3)
        stats = await sandbox.stats()
        accepted = await sandbox.accepted()
        busy_contacts = await sandbox.contacts(f"loc-{busy}")
        spent_contacts = await sandbox.contacts(f"loc-{spent}")
    finally:
        worker.stop()

    # 0 lost, 0 duplicated, in both locations.
    assert len(busy_contacts) == LEADS and len({c["email"] for c in busy_contacts}) == LEADS
    assert all(len(c["notes"]) == 1 for c in busy_contacts)
    assert len(spent_contacts) == SPENT_LEADS and all(len(c["notes"]) == 1 for c in spent_contacts)
    # The busy organisation never caused a 429. Its pace against its budget is a figure, not an
    # assertion here: bench.ghl_drain prints it (500 leads beside a spent location).
    assert stats.get(f"rate_limited:tok-{busy}", 0) == 0
    times = sorted(accepted[f"tok-{busy}"])
    rate = (len(times) - 1) / (times[-1] - times[0])
    limit = BURST * 1000 / (INTERVAL_MS + MARGIN_MS)
    print(f"busy location: {len(times)} requests at {rate:.1f}/s; its budget allows {limit:.1f}/s")
    # The spent location needed at least one daily reset: its leads were parked meanwhile.
    assert spent_done_when_busy_done <= SPENT_LEADS
    spent_times = sorted(accepted[f"tok-{spent}"])
    assert spent_times[-1] - spent_times[0] >= 9.0  # its requests span more than one GHL "day"
    # ... and the busy location synced on while the spent one waited for its reset: a location
    # waiting on its budget holds no partition, lock or connection the other needs.
    assert any(spent_times[0] < t < spent_times[-1] for t in times)
