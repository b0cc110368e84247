"""PostgreSQL adapter of the organisations' GHL credentials (crm_credentials), tokens encrypted
with CredentialCipher. Used by crm_sync to read them and by `jorge crm credentials` to manage them.
Rows stored in plain text before migration 0010 are still read, flagged `encrypted=False`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from pydantic import SecretStr

from jorge_runtime.credential_cipher import CredentialCipher, CredentialsUnreadable


class UnknownOrganization(Exception):
    """Credentials were set for an organisation that does not exist."""


@dataclass(frozen=True, slots=True)
class StoredCredentials:
    """An organisation's own GHL location and token (decrypted), as crm_sync uses them."""

    location_id: str
    token: SecretStr
    pipeline_id: str | None
    stage_id: str | None
    encrypted: bool  # False: a row from before encryption, still in plain text
    kind: str = "private"  # or "oauth": an access token that expires, with a refresh token
    expires_at: datetime | None = None
    refresh_error: str | None = None  # GHL refused the last refresh (set the credentials again)


@dataclass(frozen=True, slots=True)
class RefreshedToken:
    """What GHL's token endpoint gave: the new access token, its lifetime, the new refresh token."""

    access_token: SecretStr
    refresh_token: SecretStr
    expires_in_seconds: float


class RefreshRefused(Exception):
    """GHL refused the refresh token (revoked, already used, app uninstalled): needs a human."""


@dataclass(frozen=True, slots=True)
class CredentialsSummary:
    """What `jorge crm credentials list` shows: never the token."""

    organization_id: str
    location_id: str
    pipeline_id: str | None
    stage_id: str | None
    encrypted: bool
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RotationReport:
    """Outcome of re-encrypting every row with the first key."""

    reencrypted: int
    encrypted_plaintext: int
    unreadable: list[str]  # organisations whose token no configured key opens


class CredentialStore:
    """Reads and writes crm_credentials; without a cipher it can read only plain-text rows."""

    def __init__(self, pool: asyncpg.Pool, cipher: CredentialCipher | None) -> None:
        self._pool = pool
        self._cipher = cipher

    def _require_cipher(self) -> CredentialCipher:
        if self._cipher is None:
            raise CredentialsUnreadable(
                "CRM_CREDENTIALS_KEY is not set: GHL tokens are stored encrypted and need it"
            )
        return self._cipher

    async def get(self, organization_id: str) -> StoredCredentials | None:
        """The organisation's credentials, None without a row; CredentialsUnreadable if its
        token is encrypted and no configured key opens it."""
        row = await self._pool.fetchrow(
            """SELECT location_id, token, token_encrypted, pipeline_id, stage_id, token_kind,
                      access_expires_at, refresh_error FROM crm_credentials
                WHERE organization_id = $1""",
            organization_id,
        )
        if row is None:
            return None
        if row["token_encrypted"] is None:
            token, encrypted = SecretStr(row["token"]), False
        else:
            token, encrypted = self._require_cipher().decrypt(organization_id, row["token_encrypted"]), True
        return StoredCredentials(
            row["location_id"],
            token,
            row["pipeline_id"],
            row["stage_id"],
            encrypted,
            row["token_kind"],
            row["access_expires_at"],
            row["refresh_error"],
        )

    async def save_oauth(
        self,
        organization_id: str,
        location_id: str,
        refresh_token: SecretStr,
        pipeline_id: str | None = None,
        stage_id: str | None = None,
        *,
        access_token: SecretStr | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        """Create or replace an organisation's OAuth credentials (a Marketplace app's tokens for
        its location). Without an access token, crm_sync gets one with the refresh token first."""
        cipher = self._require_cipher()
        access = cipher.encrypt(organization_id, access_token or SecretStr(""))
        refresh = cipher.encrypt(organization_id, refresh_token)
        expiry = expires_at if access_token is not None and expires_at else datetime.now(UTC)
        try:
            await self._pool.execute(
                """INSERT INTO crm_credentials
                          (organization_id, location_id, token, token_encrypted, pipeline_id, stage_id,
                           token_kind, refresh_token_encrypted, access_expires_at)
                   VALUES ($1, $2, NULL, $3, $4, $5, 'oauth', $6, $7)
                   ON CONFLICT (organization_id) DO UPDATE
                      SET location_id = EXCLUDED.location_id, token = NULL,
                          token_encrypted = EXCLUDED.token_encrypted, pipeline_id = EXCLUDED.pipeline_id,
                          stage_id = EXCLUDED.stage_id, token_kind = 'oauth',
                          refresh_token_encrypted = EXCLUDED.refresh_token_encrypted,
                          access_expires_at = EXCLUDED.access_expires_at, refresh_failed_at = NULL,
                          refresh_error = NULL, updated_at = now()""",
                organization_id,
                location_id,
                access,
                pipeline_id,
                stage_id,
                refresh,
                expiry,
            )
        except asyncpg.ForeignKeyViolationError:
            raise UnknownOrganization(organization_id) from None

    async def refresh(
        self,
        organization_id: str,
        margin: timedelta,
        exchange: Callable[[SecretStr], Awaitable[RefreshedToken]],
    ) -> bool:
        """Refresh the organisation's OAuth access token if it expires within ``margin``.

        One refresh at a time per organisation across replicas: the row is locked while GHL is
        asked, and a replica that waited finds the new expiry and leaves it alone (GHL's refresh
        tokens are single use, so two refreshes would break the second). True if refreshed.
        RefreshRefused from ``exchange`` is recorded on the row and raised again."""
        cipher = self._require_cipher()
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """SELECT refresh_token_encrypted, refresh_error,
                          access_expires_at - now() > make_interval(secs => $2) AS fresh
                     FROM crm_credentials
                    WHERE organization_id = $1 AND token_kind = 'oauth' FOR UPDATE""",
                organization_id,
                margin.total_seconds(),
            )
            if row is None or row["refresh_error"] is not None:
                return False
            if row["fresh"]:
                return False  # another replica refreshed it meanwhile
            refused: RefreshRefused | None = None
            try:
                fresh = await exchange(cipher.decrypt(organization_id, row["refresh_token_encrypted"]))
            except RefreshRefused as error:
                refused = error
                await conn.execute(
                    """UPDATE crm_credentials SET refresh_failed_at = now(), refresh_error = $2
                        WHERE organization_id = $1""",
                    organization_id,
                    str(error)[:300],
                )
            else:
                await conn.execute(
                    """UPDATE crm_credentials SET token_encrypted = $2, refresh_token_encrypted = $3,
                              access_expires_at = now() + make_interval(secs => $4), updated_at = now()
                        WHERE organization_id = $1""",
                    organization_id,
                    cipher.encrypt(organization_id, fresh.access_token),
                    cipher.encrypt(organization_id, fresh.refresh_token),
                    float(fresh.expires_in_seconds),
                )
        if refused is not None:  # recorded (committed) first: every replica now sees it
            raise refused
        return True

    async def save(
        self,
        organization_id: str,
        location_id: str,
        token: SecretStr,
        pipeline_id: str | None = None,
        stage_id: str | None = None,
    ) -> None:
        """Create or replace the organisation's credentials, the token encrypted (never in plain
        text: without a key this raises CredentialsUnreadable and stores nothing)."""
        sealed = self._require_cipher().encrypt(organization_id, token)
        try:
            await self._pool.execute(
                """INSERT INTO crm_credentials
                          (organization_id, location_id, token, token_encrypted, pipeline_id, stage_id)
                   VALUES ($1, $2, NULL, $3, $4, $5)
                   ON CONFLICT (organization_id) DO UPDATE
                      SET location_id = EXCLUDED.location_id, token = NULL,
                          token_encrypted = EXCLUDED.token_encrypted, pipeline_id = EXCLUDED.pipeline_id,
                          stage_id = EXCLUDED.stage_id, token_kind = 'private',
                          refresh_token_encrypted = NULL, access_expires_at = NULL,
                          refresh_failed_at = NULL, refresh_error = NULL, updated_at = now()""",
                organization_id,
                location_id,
                sealed,
                pipeline_id,
                stage_id,
            )
        except asyncpg.ForeignKeyViolationError:
            raise UnknownOrganization(organization_id) from None

    async def summaries(self) -> list[CredentialsSummary]:
        """Every organisation's credentials, without tokens, by organisation."""
        rows = await self._pool.fetch(
            """SELECT organization_id, location_id, pipeline_id, stage_id,
                      token_encrypted IS NOT NULL AS encrypted, updated_at
                 FROM crm_credentials ORDER BY organization_id"""
        )
        return [CredentialsSummary(**dict(r)) for r in rows]

    async def remove(self, organization_id: str) -> bool:
        """Delete the organisation's credentials; False if it had none."""
        status = await self._pool.execute(
            "DELETE FROM crm_credentials WHERE organization_id = $1", organization_id
        )
        return status != "DELETE 0"

    async def encrypt_plaintext(self) -> list[str]:
        """Encrypt the rows still in plain text (from before encryption), if a key is set; the
        organisations whose rows were encrypted. crm_sync runs it at start, then refuses such rows."""
        if self._cipher is None:
            return []
        plain = await self._pool.fetch("SELECT organization_id FROM crm_credentials WHERE token IS NOT NULL")
        if not plain:
            return []
        organizations = [row["organization_id"] for row in plain]
        report = await self.rotate(organizations)
        return organizations if report.encrypted_plaintext else []

    async def rotate(self, organizations: list[str] | None = None) -> RotationReport:
        """Re-encrypt every token (or these organisations') with the first key, encrypting
        plain-text rows on the way. Each row is updated only if unchanged since read, so a
        concurrent `set` is never undone."""
        cipher = self._require_cipher()
        reencrypted = plaintext = 0
        unreadable: list[str] = []
        rows = await self._pool.fetch(
            """SELECT organization_id, token, token_encrypted FROM crm_credentials
                WHERE $1::text[] IS NULL OR organization_id = ANY($1) ORDER BY organization_id""",
            organizations,
        )
        for row in rows:
            org = row["organization_id"]
            try:
                if row["token_encrypted"] is None:
                    sealed = cipher.encrypt(org, SecretStr(row["token"]))
                else:
                    sealed = cipher.rotate(org, row["token_encrypted"])
            except CredentialsUnreadable:
                unreadable.append(org)
                continue
            status = await self._pool.execute(
                """UPDATE crm_credentials SET token = NULL, token_encrypted = $2
                    WHERE organization_id = $1 AND token IS NOT DISTINCT FROM $3
                      AND token_encrypted IS NOT DISTINCT FROM $4""",
                org,
                sealed,
                row["token"],
                row["token_encrypted"],
            )
            if status == "UPDATE 1":
                if row["token_encrypted"] is None:
                    plaintext += 1
                else:
                    reencrypted += 1
        return RotationReport(reencrypted, plaintext, unreadable)
