"""OAuth access tokens of a GHL Marketplace app on the real stack: refreshed once before they
expire whatever the number of replicas, and a refused refresh keeps the events, not dead letters."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from pydantic import SecretStr

from jorge_runtime.credential_cipher import CredentialCipher, generate_key
from jorge_runtime.settings import Settings
from schemas.topics import TopicNames
from services.crm_sync.ghl.credential_store import CredentialStore
from tests.support.ghl import Sandbox, publish_qualified, qualified_event
from tests.support.services import ServiceProcess
from tests.support.waiting import eventually

LIFETIME_S, MARGIN_S = 8, 4


def _crm(settings: Settings, sandbox: Sandbox, key: SecretStr) -> Settings:
    return settings.model_copy(
        update={
            "ghl_base_url": sandbox.url,
            "ghl_token": None,
            "crm_credentials_key": key,
            "ghl_client_id": "jorge-app",
            "ghl_client_secret": SecretStr("app-secret"),
            "ghl_token_refresh_margin_seconds": MARGIN_S,
            "crm_waiting_check_seconds": 0.5,
            "crm_retry_delays_seconds": "0.3,0.6,1,1,1",
            "crm_max_attempts": 20,
        }
    )


async def test_a_token_expiring_mid_run_is_refreshed_once_across_replicas(
    settings: Settings,
    topics: TopicNames,
    pool: asyncpg.Pool,
    organization: str,
    sandbox: Sandbox,
    tmp_path: Path,
) -> None:
    bootstrap = settings.kafka_bootstrap_servers
    assert bootstrap
    key, location = SecretStr(generate_key()), f"loc-{organization}"
    first = await sandbox.oauth(
        client_id="jorge-app", client_secret="app-secret", location_id=location, expires_in=LIFETIME_S
    )
    await CredentialStore(pool, CredentialCipher(key)).save_oauth(
        organization,
        location,
        SecretStr(first["refresh_token"]),
        access_token=SecretStr(first["access_token"]),
        expires_at=datetime.now(UTC) + timedelta(seconds=LIFETIME_S),
    )
    crm = _crm(settings, sandbox, key)
    replicas = []
    for i in range(3):
        (tmp_path / f"r{i}").mkdir()
        replicas.append(ServiceProcess.worker("crm_sync", crm, tmp_path / f"r{i}"))
    events = [qualified_event(organization, n, hot=False) for n in range(30)]
    try:
        await asyncio.gather(*(r.start() for r in replicas))
        await publish_qualified(bootstrap, topics, events[:15])
        await asyncio.sleep(LIFETIME_S - MARGIN_S + 1)  # the rest arrive once a refresh is due
        await publish_qualified(bootstrap, topics, events[15:])

        async def synced() -> bool:
            contacts = await sandbox.contacts(location)
            return len(contacts) == 30 and all(len(c["notes"]) == 1 for c in contacts)

        await eventually(synced, 60, "30 leads synced", interval=0.25)
        stats = await sandbox.stats()
        row = await pool.fetchrow(
            "SELECT refresh_error, access_expires_at FROM crm_credentials WHERE organization_id = $1",
            organization,
        )
    finally:
        for replica in replicas:
            replica.stop()
    assert stats.get("oauth_refreshes") == 1 and stats.get("oauth_refused", 0) == 0
    assert stats.get("unauthorized", 0) == 0  # no call went out with an expired token
    assert row is not None and row["refresh_error"] is None
    assert row["access_expires_at"] > datetime.now(UTC) + timedelta(minutes=30)
    logs = "".join((tmp_path / f"r{i}" / "crm_sync.log").read_text() for i in range(3))
    assert first["refresh_token"] not in logs and first["access_token"] not in logs


async def test_a_refused_refresh_keeps_the_events_until_new_credentials(
    settings: Settings,
    topics: TopicNames,
    pool: asyncpg.Pool,
    organization: str,
    sandbox: Sandbox,
    tmp_path: Path,
) -> None:
    bootstrap = settings.kafka_bootstrap_servers
    assert bootstrap
    key, location = SecretStr(generate_key()), f"loc-{organization}"
    store = CredentialStore(pool, CredentialCipher(key))
    good = await sandbox.oauth(client_id="jorge-app", client_secret="app-secret", location_id=location)
    await store.save_oauth(organization, location, SecretStr("rt-revoked-by-the-customer"))
    worker = ServiceProcess.worker("crm_sync", _crm(settings, sandbox, key), tmp_path)
    await worker.start()
    try:
        await publish_qualified(
            bootstrap, topics, [qualified_event(organization, n, hot=False) for n in range(3)]
        )

        async def kept() -> bool:
            count = await pool.fetchval(
                "SELECT count(*) FROM crm_waiting_events WHERE organization_id = $1", organization
            )
            return bool(count == 3)

        await eventually(kept, 60, "the events kept", interval=0.25)
        row = await pool.fetchrow(
            "SELECT refresh_error FROM crm_credentials WHERE organization_id = $1", organization
        )
        assert row is not None and "Invalid grant" in row["refresh_error"]
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM crm_dead_letters WHERE organization_id = $1", organization
            )
            == 0
        )
        assert "cannot be refreshed" in worker.log_path.read_text()

        await store.save_oauth(organization, location, SecretStr(good["refresh_token"]))

        async def synced() -> bool:
            return len(await sandbox.contacts(location)) == 3

        await eventually(
            synced, 60, "the kept events synced once the refresh token was replaced", interval=0.25
        )
    finally:
        worker.stop()
    assert (await sandbox.stats()).get("oauth_refused") == 1
