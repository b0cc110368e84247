"""Webhook signing secrets at rest, on the real database: plain-text rows from before migration
0023 are encrypted (at a service's start, or by `jorge crm rotate-webhook-secrets`), new plain
text is refused, and a new first key takes every secret over while the old one still opens them."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from jorge_runtime.credential_cipher import CredentialsUnreadable, generate_key
from jorge_runtime.settings import Settings
from jorge_runtime.webhook_secrets import (
    encrypt_plaintext_at_start,
    encrypt_stored_secrets,
    unseal,
    webhook_secret_cipher,
)
from schemas.webhooks import generate_secret, new_endpoint_id
from services.gateway.tenancy import TenancyStore
from tests.support.services import run_jorge

NO_PLAIN = "webhook_endpoints_no_new_plain_secret"
INSERT = """INSERT INTO webhook_endpoints (id, organization_id, url, events, secret, previous_secret)
            VALUES ($1, $2, 'https://hooks.example.com/in', ARRAY['lead.qualified'], $3, $4)"""


async def plaintext_endpoint(pool: asyncpg.Pool, organization: str, secret: str, previous: str | None) -> str:
    """An endpoint as stored before migration 0023 (the constraint refusing new plain text is
    lifted for this one insert, in one transaction)."""
    endpoint_id = new_endpoint_id()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"ALTER TABLE webhook_endpoints DROP CONSTRAINT {NO_PLAIN}")
        await conn.execute(INSERT, endpoint_id, organization, secret, previous)
        await conn.execute(
            f"""ALTER TABLE webhook_endpoints ADD CONSTRAINT {NO_PLAIN}
                CHECK (secret IS NULL AND previous_secret IS NULL) NOT VALID"""
        )
    return endpoint_id


async def test_plain_text_secrets_are_encrypted_at_start_and_new_ones_refused(
    pool: asyncpg.Pool, organization: str, settings: Settings
) -> None:
    secret, previous = generate_secret(), generate_secret()
    endpoint_id = await plaintext_endpoint(pool, organization, secret, previous)
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(INSERT, new_endpoint_id(), organization, generate_secret(), None)

    await encrypt_plaintext_at_start(pool, None, "test")  # no key: left as it is, logged
    assert await pool.fetchval("SELECT secret FROM webhook_endpoints WHERE id = $1", endpoint_id) == secret

    cipher = webhook_secret_cipher(settings.crm_credentials_key)
    assert cipher is not None
    await encrypt_plaintext_at_start(pool, cipher, "test")
    row = await pool.fetchrow("SELECT * FROM webhook_endpoints WHERE id = $1", endpoint_id)
    assert row is not None and row["secret"] is None and row["previous_secret"] is None
    assert unseal(cipher, endpoint_id, row["secret_encrypted"]) == secret
    assert unseal(cipher, endpoint_id, row["previous_secret_encrypted"]) == previous
    with pytest.raises(CredentialsUnreadable, match="another endpoint"):
        unseal(cipher, new_endpoint_id(), row["secret_encrypted"])  # bound to its endpoint
    again = await encrypt_stored_secrets(pool, cipher, rotate=False)
    assert endpoint_id not in again.unreadable and again.encrypted_plaintext == 0


async def test_the_cli_encrypts_plain_text_and_moves_every_secret_to_the_new_first_key(
    pool: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    organization = f"org-{uuid.uuid4().hex[:10]}"
    await TenancyStore(pool).create_organization(organization, "Rotating Realty")
    secret = generate_secret()
    endpoint_id = await plaintext_endpoint(pool, organization, secret, None)
    old_key = settings.crm_credentials_key
    assert old_key is not None
    new_key = generate_key()
    both = SecretStr(f"{new_key},{old_key.get_secret_value()}")
    done = run_jorge(
        settings.model_copy(update={"crm_credentials_key": both}), tmp_path, "crm", "rotate-webhook-secrets"
    )
    assert done.returncode == 0, done.stderr
    assert "stored in plain text" in done.stdout and secret not in done.stdout + done.stderr
    sealed = await pool.fetchval("SELECT secret_encrypted FROM webhook_endpoints WHERE id = $1", endpoint_id)
    new_only = webhook_secret_cipher(SecretStr(new_key))
    assert new_only is not None and unseal(new_only, endpoint_id, sealed) == secret
    old_only = webhook_secret_cipher(old_key)
    assert old_only is not None
    with pytest.raises(CredentialsUnreadable, match="none of the 1 key"):
        unseal(old_only, endpoint_id, sealed)

    other = settings.model_copy(update={"crm_credentials_key": SecretStr(generate_key())})
    without_old = run_jorge(other, tmp_path, "crm", "rotate-webhook-secrets")
    assert without_old.returncode == 1 and endpoint_id in without_old.stderr
