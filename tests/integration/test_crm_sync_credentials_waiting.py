"""crm_sync's credentials per organisation on the real stack: the global token belongs to one
named organisation, others' events wait for their own credentials (kept, counted, then synced),
and a token without a needed scope is told apart from a bad token."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx
from pydantic import SecretStr

from jorge_runtime.credential_cipher import CredentialCipher, generate_key
from jorge_runtime.settings import Settings
from schemas.topics import TopicNames
from services.crm_sync.ghl.credential_store import CredentialStore
from tests.support.ghl import Sandbox, publish_qualified, qualified_event
from tests.support.services import ServiceProcess
from tests.support.waiting import eventually


async def _gauge(worker: ServiceProcess) -> float | None:
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{worker.base_url}/metrics")).text
    for line in text.splitlines():
        if line.startswith("jorge_crm_events_waiting_for_credentials "):
            return float(line.split()[1])
    return None


async def test_events_without_credentials_wait_then_sync_once_credentials_are_set(
    settings: Settings,
    topics: TopicNames,
    pool: asyncpg.Pool,
    organization: str,
    sandbox: Sandbox,
    tmp_path: Path,
) -> None:
    bootstrap = settings.kafka_bootstrap_servers
    assert bootstrap
    key = SecretStr(generate_key())
    location = f"own-{organization}"
    crm = settings.model_copy(
        update={
            "ghl_base_url": sandbox.url,
            # The global token belongs to another organisation: never used for this one.
            "ghl_token": SecretStr("global-token"),
            "ghl_location_id": "global-location",
            "ghl_organization": "another-organisation",
            "ghl_pipeline_id": "pipeline-buyers",
            "crm_credentials_key": key,
            "crm_waiting_check_seconds": 0.5,
            "ghl_budget_interval_ms": 1000,
        }
    )
    worker = ServiceProcess.worker("crm_sync", crm, tmp_path)
    await worker.start()
    try:
        events = [qualified_event(organization, n, hot=n == 0) for n in range(3)]
        await publish_qualified(bootstrap, topics, events)

        async def kept() -> bool:
            waiting = await pool.fetchval(
                "SELECT count(*) FROM crm_waiting_events WHERE organization_id = $1", organization
            )
            return bool(waiting == 3)

        await eventually(kept, 45, "three events kept for the organisation", interval=0.25)
        await eventually(lambda: _has_gauge(worker, 3), 45, "the waiting gauge at 3", interval=0.25)
        assert await sandbox.contacts("global-location") == []
        assert (await sandbox.stats()).get("requests", 0) == 0

        await CredentialStore(pool, CredentialCipher(key)).save(
            organization, location, SecretStr("own-token")
        )

        async def synced() -> bool:
            return len(await sandbox.contacts(location)) == 3

        await eventually(synced, 45, "the kept events synced with the new credentials", interval=0.25)
        await eventually(lambda: _has_gauge(worker, 0), 45, "the waiting gauge back at 0", interval=0.25)
        contacts = await sandbox.contacts(location)
    finally:
        worker.stop()
    assert sorted(len(c["notes"]) for c in contacts) == [1, 1, 1]
    assert sum(len(c["opportunities"]) for c in contacts) == 1
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM crm_waiting_events WHERE organization_id = $1", organization
        )
        == 0
    )


async def _has_gauge(worker: ServiceProcess, value: float) -> bool:
    return await _gauge(worker) == value


async def test_a_missing_scope_is_its_own_dead_letter_naming_the_scope(
    settings: Settings,
    topics: TopicNames,
    pool: asyncpg.Pool,
    organization: str,
    sandbox: Sandbox,
    tmp_path: Path,
) -> None:
    bootstrap = settings.kafka_bootstrap_servers
    assert bootstrap
    token = f"token-{organization}"
    # The token may read and write contacts but not opportunities: a hot lead's opportunity fails.
    await sandbox.token(token, scopes=["contacts.readonly", "contacts.write"])
    crm = settings.model_copy(
        update={
            "ghl_base_url": sandbox.url,
            "ghl_token": SecretStr(token),
            "ghl_location_id": f"loc-{organization}",
            "ghl_organization": organization,
            "ghl_pipeline_id": "pipeline-buyers",
            "ghl_budget_interval_ms": 1000,
        }
    )
    worker = ServiceProcess.worker("crm_sync", crm, tmp_path)
    await worker.start()
    try:
        event = qualified_event(organization, 1, hot=True)
        await publish_qualified(bootstrap, topics, [event])

        async def dead() -> bool:
            found = await pool.fetchval(
                "SELECT count(*) FROM crm_dead_letters WHERE event_id = $1", event.event_id
            )
            return bool(found)

        await eventually(dead, 45, "the dead letter", interval=0.25)
        row = await pool.fetchrow(
            "SELECT reason, detail FROM crm_dead_letters WHERE event_id = $1", event.event_id
        )
    finally:
        worker.stop()
    assert row is not None and row["reason"] == "ghl_scope_missing"
    assert "opportunities.readonly" in row["detail"] and "not authorized for this scope" in row["detail"]
    assert token not in row["detail"]


async def test_jorge_status_lists_credential_problems_with_what_to_do(
    settings: Settings, pool: asyncpg.Pool, organization: str
) -> None:
    from jorge_cli.crm_status import crm_problems

    assert settings.database_url
    await pool.execute(
        """INSERT INTO crm_waiting_events (event_id, organization_id, event_type, lane, body)
           VALUES (gen_random_uuid(), $1, 'lead.qualified', 'hot', '{}'::bytea)""",
        organization,
    )
    await pool.execute(
        """INSERT INTO crm_dead_letters
                  (organization_id, event_type, lane, reason, detail, attempts, headers, body)
           VALUES ($1, 'lead.qualified', 'hot', 'ghl_scope_missing', 'missing scope contacts.write', 1,
                   '{}'::jsonb, '{}'::bytea)""",
        organization,
    )
    mine = [p for p in await crm_problems(settings.database_url) if p["organization_id"] == organization]
    by_problem = {p["problem"]: p for p in mine}
    assert set(by_problem) == {"ghl_scope_missing", "waiting_for_credentials"}
    assert "jorge dlq replay --reason ghl_scope_missing" in by_problem["ghl_scope_missing"]["do"]
    assert "jorge crm credentials set" in by_problem["waiting_for_credentials"]["do"]
