"""Authentication against the real PostgreSQL: unknown keys cached briefly, hostile tokens refused."""

from __future__ import annotations

import asyncio
import secrets
import time

import asyncpg
import jwt
import pytest

from services.gateway.auth import ISSUER, Authenticator, AuthError
from services.gateway.tenancy import KEY_PREFIX, KeyRecord, TenancyStore, hash_key

SECRET = "test-secret-0123456789abcdefghijklmnopqrstuv"


class CountingTenancy(TenancyStore):
    lookups = 0

    async def find_key(self, *, key_hash: bytes | None = None, key_id: str | None = None) -> KeyRecord | None:
        self.lookups += 1
        return await super().find_key(key_hash=key_hash, key_id=key_id)


async def test_unknown_keys_are_cached_briefly_and_a_key_created_meanwhile_works_after(
    pool: asyncpg.Pool, organization: str
) -> None:
    tenancy = CountingTenancy(pool)
    auth = Authenticator(tenancy, jwt_secret=SECRET, ttl_seconds=5, max_token_seconds=3600,
                         negative_ttl_seconds=0.5)  # fmt: skip
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    for _ in range(20):
        with pytest.raises(AuthError) as refused:
            await auth.authenticate(secret)
        assert refused.value.error == "invalid_api_key"
    assert tenancy.lookups == 1  # a flood of one wrong key costs one query per interval

    await pool.execute(
        """INSERT INTO api_keys (key_id, organization_id, name, key_prefix, key_hash)
           VALUES ($1, $2, 'late', $3, $4)""",
        "key_" + secrets.token_hex(8), organization, secret[:12], hash_key(secret),
    )  # fmt: skip
    await asyncio.sleep(0.6)
    assert (await auth.authenticate(secret)).organization_id == organization


def _claims(key_id: str, organization: str, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    return {"iss": ISSUER, "sub": key_id, "org": organization, "iat": now, "exp": now + 600} | overrides


async def test_tokens_with_alg_none_a_wrong_organisation_or_a_future_iat_are_refused(
    pool: asyncpg.Pool, organization: str
) -> None:
    tenancy = TenancyStore(pool)
    key = await tenancy.issue_key(organization, "tokens")
    await tenancy.create_organization("org-other-realty", "Other Realty")
    auth = Authenticator(tenancy, jwt_secret=SECRET, ttl_seconds=5, max_token_seconds=3600)
    good = jwt.encode(_claims(key.key_id, organization), SECRET, algorithm="HS256")
    assert (await auth.authenticate(good)).key_id == key.key_id

    unsigned = jwt.encode(_claims(key.key_id, organization), "", algorithm="none")
    other_org = jwt.encode(_claims(key.key_id, "org-other-realty"), SECRET, algorithm="HS256")
    future = jwt.encode(
        _claims(key.key_id, organization, iat=int(time.time()) + 3600), SECRET, algorithm="HS256"
    )
    for token in (unsigned, unsigned + "x", other_org, future):
        with pytest.raises(AuthError) as refused:
            await auth.authenticate(token if token.count(".") == 2 else token + ".")
        assert refused.value.error == "invalid_token", token
