"""Organisations and their API keys: creation (shown once), hashing at rest, lookup, revocation."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

KEY_PREFIX = "jk_live_"
_ORG_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated organisation, the key it used and the organisation's limit overrides."""

    organization_id: str
    key_id: str
    rate_limits: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key as stored, revoked or not."""

    caller: Caller
    revoked: bool


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new API key: ``secret`` is the only copy and is never stored."""

    key_id: str
    organization_id: str
    secret: str


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What can be listed about a key without revealing it."""

    key_id: str
    name: str
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None


def hash_key(secret: str) -> bytes:
    """SHA-256 of the key: keys carry 256 random bits, so a slow, salted hash adds nothing."""
    return hashlib.sha256(secret.encode()).digest()


class TenancyStore:
    """PostgreSQL adapter for organisations and API keys."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create_organization(self, organization_id: str, name: str) -> bool:
        """Create the organisation; False if it already exists."""
        if not _ORG_ID.match(organization_id):
            raise ValueError("organisation ids are 2-63 lower-case letters, digits or dashes")
        created = await self._pool.fetchval(
            """INSERT INTO organizations (organization_id, name) VALUES ($1, $2)
               ON CONFLICT DO NOTHING RETURNING true""",
            organization_id,
            name,
        )
        return bool(created)

    async def list_organizations(self) -> list[tuple[str, str, int]]:
        """Every organisation as (id, name, number of live keys)."""
        rows = await self._pool.fetch(
            """SELECT o.organization_id, o.name, count(k.key_id) FILTER (WHERE k.revoked_at IS NULL) AS keys
                 FROM organizations o LEFT JOIN api_keys k USING (organization_id)
                GROUP BY o.organization_id, o.name ORDER BY o.organization_id"""
        )
        return [(r["organization_id"], r["name"], r["keys"]) for r in rows]

    async def issue_key(self, organization_id: str, name: str) -> IssuedKey:
        """Create a key for the organisation and return its secret, which is shown only once."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = "key_" + secrets.token_hex(8)
        await self._pool.execute(
            """INSERT INTO api_keys (key_id, organization_id, name, key_prefix, key_hash)
               VALUES ($1, $2, $3, $4, $5)""",
            key_id,
            organization_id,
            name,
            secret[: len(KEY_PREFIX) + 4],
            hash_key(secret),
        )
        return IssuedKey(key_id=key_id, organization_id=organization_id, secret=secret)

    async def find_key(self, *, key_hash: bytes | None = None, key_id: str | None = None) -> KeyRecord | None:
        """The key with this hash (see hash_key) or id, revoked or not, with its organisation's limits."""
        row = await self._pool.fetchrow(
            """SELECT k.key_id, k.organization_id, k.revoked_at IS NOT NULL AS revoked, o.rate_limits
                 FROM api_keys k JOIN organizations o USING (organization_id)
                WHERE k.key_hash = $1 OR k.key_id = $2""",
            key_hash,
            key_id,
        )
        if row is None:
            return None
        caller = Caller(row["organization_id"], row["key_id"], dict(row["rate_limits"] or {}))
        return KeyRecord(caller=caller, revoked=row["revoked"])

    async def authenticate(self, secret: str) -> Caller | None:
        """The caller a live key belongs to, or None for unknown and revoked keys."""
        record = await self.find_key(key_hash=hash_key(secret))
        return record.caller if record and not record.revoked else None

    async def set_rate_limit(self, organization_id: str, name: str, value: int | None) -> bool:
        """Override one limit for the organisation (None restores the default); False if no such org."""
        updated = await self._pool.fetchval(
            """UPDATE organizations
                  SET rate_limits = CASE WHEN $3::int IS NULL THEN rate_limits - $2
                                         ELSE rate_limits || jsonb_build_object($2::text, $3::int) END
                WHERE organization_id = $1 RETURNING true""",
            organization_id,
            name,
            value,
        )
        return bool(updated)

    async def set_booking_url(self, organization_id: str, template: str | None) -> bool:
        """Set (None clears) the organisation's booking link template, shown to API callers as
        `schedule_showing_url`; False if no such organisation."""
        updated = await self._pool.fetchval(
            "UPDATE organizations SET schedule_showing_url = $2 WHERE organization_id = $1 RETURNING true",
            organization_id,
            template,
        )
        return bool(updated)

    async def booking_url(self, organization_id: str) -> str | None:
        """The organisation's booking link template, or None."""
        template: str | None = await self._pool.fetchval(
            "SELECT schedule_showing_url FROM organizations WHERE organization_id = $1", organization_id
        )
        return template

    async def list_keys(self, organization_id: str) -> list[KeyInfo]:
        """Every key of the organisation, newest first, without secrets."""
        rows = await self._pool.fetch(
            """SELECT key_id, name, key_prefix, created_at, revoked_at FROM api_keys
               WHERE organization_id = $1 ORDER BY created_at DESC""",
            organization_id,
        )
        return [KeyInfo(**dict(r)) for r in rows]

    async def revoke_key(self, key_id: str) -> bool:
        """Revoke a key at once; False if it does not exist or was already revoked."""
        revoked = await self._pool.fetchval(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL RETURNING true",
            key_id,
        )
        return bool(revoked)
