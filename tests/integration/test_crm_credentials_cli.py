"""`jorge crm credentials` against the real stack: tokens go in encrypted, crm_sync reads them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from jorge_runtime.credential_cipher import CredentialCipher, CredentialsUnreadable, generate_key
from jorge_runtime.settings import Settings
from schemas.topics import TopicNames
from services.crm_sync.ghl.credential_store import CredentialStore
from services.gateway.tenancy import TenancyStore
from tests.support.ghl import Sandbox, publish_qualified, qualified_event
from tests.support.services import ServiceProcess
from tests.support.services import run_jorge as jorge
from tests.support.waiting import eventually


async def test_credentials_set_by_the_cli_are_encrypted_and_used_by_crm_sync(
    settings: Settings,
    topics: TopicNames,
    pool: asyncpg.Pool,
    organization: str,
    sandbox: Sandbox,
    tmp_path: Path,
) -> None:
    assert settings.kafka_bootstrap_servers
    token, location = f"pit-secret-{organization}", f"own-loc-{organization}"
    key = SecretStr(generate_key())
    # No default GHL_TOKEN: the organisation's own row is the only way its events reach GHL.
    crm = settings.model_copy(
        update={"ghl_base_url": sandbox.url, "ghl_token": None, "crm_credentials_key": key}
    )
    worker = ServiceProcess.worker("crm_sync", crm, tmp_path)
    cli = ("crm", "credentials")
    try:
        _, done = await asyncio.gather(
            worker.start(),
            asyncio.to_thread(
                jorge, crm, tmp_path, *cli, "set", organization, "--location-id", location,
                "--token-stdin", stdin=f"{token}\n",
            ),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert token not in done.stdout + done.stderr

        row = await pool.fetchrow("SELECT * FROM crm_credentials WHERE organization_id = $1", organization)
        assert row is not None
        assert row["token"] is None and row["location_id"] == location
        assert token.encode() not in bytes(row["token_encrypted"])
        assert token not in str(dict(row))
        assert await CredentialStore(pool, CredentialCipher(key)).get(organization) is not None

        await publish_qualified(
            settings.kafka_bootstrap_servers, topics, [qualified_event(organization, 0, hot=False)]
        )

        async def synced() -> bool:
            return len(await sandbox.contacts(location)) == 1

        await eventually(synced, what="the contact written with the organisation's own credentials")
        assert token not in worker.log_path.read_text()

        listed = await asyncio.to_thread(jorge, crm, tmp_path, *cli, "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert token not in listed.stdout
        mine = [r for r in json.loads(listed.stdout) if r["organization_id"] == organization]
        assert mine and mine[0]["location_id"] == location and mine[0]["token"] == "encrypted"
    finally:
        worker.stop()

    # Without a key: the CLI refuses to store a token, and crm_sync's read names the problem.
    no_key = crm.model_copy(update={"crm_credentials_key": None})
    refused = await asyncio.to_thread(
        jorge, no_key, tmp_path, *cli, "set", organization, "--location-id", "x", "--token-stdin",
        stdin="other",
    )  # fmt: skip
    assert refused.returncode == 2 and "CRM_CREDENTIALS_KEY is not set" in refused.stderr
    with pytest.raises(CredentialsUnreadable, match="CRM_CREDENTIALS_KEY is not set") as caught:
        await CredentialStore(pool, None).get(organization)
    assert token not in str(caught.value)

    removed = await asyncio.to_thread(jorge, crm, tmp_path, *cli, "remove", organization)
    assert removed.returncode == 0, removed.stderr
    assert (
        await pool.fetchval("SELECT count(*) FROM crm_credentials WHERE organization_id = $1", organization)
        == 0
    )


async def test_plain_text_rows_from_before_encryption_are_read_then_encrypted_by_rotate(
    settings: Settings, pool: asyncpg.Pool, organization: str, tmp_path: Path
) -> None:
    old_key, new_key = generate_key(), generate_key()
    legacy = f"{organization}-legacy"
    await TenancyStore(pool).create_organization(legacy, "Legacy Realty")
    await pool.execute(
        "INSERT INTO crm_credentials (organization_id, location_id, token) VALUES ($1, 'loc-l', 'plain-tok')",
        legacy,
    )
    await CredentialStore(pool, CredentialCipher(SecretStr(old_key))).save(
        organization, "loc-o", SecretStr("sealed-tok")
    )
    read = await CredentialStore(pool, None).get(legacy)
    assert read is not None and not read.encrypted and read.token.get_secret_value() == "plain-tok"

    # New key first, old one after: rotate moves every token to the new key and encrypts the plain one.
    both = settings.model_copy(update={"crm_credentials_key": SecretStr(f"{new_key},{old_key}")})
    done = await asyncio.to_thread(
        jorge, both, tmp_path, "crm", "credentials", "rotate",
        "--organization", legacy, "--organization", organization,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "re-encrypted 1, encrypted 1" in done.stdout
    only_new = CredentialStore(pool, CredentialCipher(SecretStr(new_key)))
    for org, expected in ((legacy, "plain-tok"), (organization, "sealed-tok")):
        got = await only_new.get(org)
        assert got is not None and got.encrypted and got.token.get_secret_value() == expected
    with pytest.raises(CredentialsUnreadable, match="none of the 1 key"):
        await CredentialStore(pool, CredentialCipher(SecretStr(old_key))).get(organization)


async def test_crm_sync_without_the_key_dead_letters_with_a_credentials_reason_never_the_token(
    settings: Settings,
    topics: TopicNames,
    pool: asyncpg.Pool,
    organization: str,
    sandbox: Sandbox,
    tmp_path: Path,
) -> None:
    assert settings.kafka_bootstrap_servers
    token = f"pit-secret-{organization}"
    await CredentialStore(pool, CredentialCipher(SecretStr(generate_key()))).save(
        organization, f"loc-{organization}", SecretStr(token)
    )
    crm = settings.model_copy(
        update={"ghl_base_url": sandbox.url, "ghl_token": None, "crm_credentials_key": None}
    )
    worker = ServiceProcess.worker("crm_sync", crm, tmp_path)
    await worker.start()
    try:
        event = qualified_event(organization, 0, hot=False)
        await publish_qualified(settings.kafka_bootstrap_servers, topics, [event])

        async def dead() -> asyncpg.Record | None:
            return await pool.fetchrow("SELECT * FROM crm_dead_letters WHERE event_id = $1", event.event_id)

        row = await eventually(dead, what="the event dead-lettered for unreadable credentials")
        assert row["reason"] == "crm_credentials_unreadable"
        assert "CRM_CREDENTIALS_KEY is not set" in row["detail"]
        log = worker.log_path.read_text()
        assert "stored GHL credentials cannot be read" in log and token not in log
        assert await sandbox.contacts(f"loc-{organization}") == []
    finally:
        worker.stop()
