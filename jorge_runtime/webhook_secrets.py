"""Webhook signing secrets at rest: sealed with the CRM_CREDENTIALS_KEY keyring, each bound to
its endpoint. The gateway seals the secrets it creates, crm_sync opens them to sign, and both
(at start) and `jorge webhooks encrypt-secrets` encrypt the rows stored in plain text before
migration 0023 and move every secret to the keyring's first key."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import asyncpg
from pydantic import SecretStr

from jorge_runtime.credential_cipher import CredentialCipher, CredentialsUnreadable

log = logging.getLogger(__name__)


def webhook_secret_cipher(keys: SecretStr | None) -> CredentialCipher | None:
    """The cipher of webhook secrets for the CRM_CREDENTIALS_KEY setting, or None when unset."""
    return CredentialCipher.from_setting(keys, subject="webhook signing secret", owner="endpoint")


def seal(cipher: CredentialCipher, endpoint_id: str, secret: str) -> bytes:
    """The endpoint's `whsec_` secret, encrypted with the first key and bound to the endpoint."""
    return cipher.encrypt(endpoint_id, SecretStr(secret))


def unseal(cipher: CredentialCipher, endpoint_id: str, sealed: bytes | None) -> str | None:
    """The endpoint's secret in clear (None for None); CredentialsUnreadable if no key opens it."""
    return None if sealed is None else cipher.decrypt(endpoint_id, sealed).get_secret_value()


@dataclass
class SecretsReport:
    """What `encrypt_stored_secrets` did, endpoint by endpoint."""

    encrypted_plaintext: int = 0
    reencrypted: int = 0
    unreadable: list[str] = field(default_factory=list)


async def encrypt_stored_secrets(
    pool: asyncpg.Pool, cipher: CredentialCipher, *, rotate: bool
) -> SecretsReport:
    """Encrypt every secret still in plain text and clear it; with ``rotate``, also re-encrypt
    the others with the first key. Each row is updated only if unchanged since read, so a
    concurrent rotation through the API is never undone."""
    report = SecretsReport()
    rows = await pool.fetch(
        """SELECT id, secret, previous_secret, secret_encrypted, previous_secret_encrypted
             FROM webhook_endpoints
            WHERE status <> 'deleted' AND (secret IS NOT NULL OR previous_secret IS NOT NULL OR $1)
            ORDER BY id""",
        rotate,
    )
    for row in rows:
        endpoint = row["id"]
        plain = row["secret"] is not None or row["previous_secret"] is not None
        try:
            current = row["secret"] or unseal(cipher, endpoint, row["secret_encrypted"])
            previous = row["previous_secret"] or unseal(cipher, endpoint, row["previous_secret_encrypted"])
        except CredentialsUnreadable:
            report.unreadable.append(endpoint)
            continue
        status = await pool.execute(
            """UPDATE webhook_endpoints
                  SET secret = NULL, previous_secret = NULL, secret_encrypted = $2,
                      previous_secret_encrypted = $3
                WHERE id = $1 AND secret IS NOT DISTINCT FROM $4
                  AND previous_secret IS NOT DISTINCT FROM $5
                  AND secret_encrypted IS NOT DISTINCT FROM $6
                  AND previous_secret_encrypted IS NOT DISTINCT FROM $7""",
            endpoint,
            seal(cipher, endpoint, current) if current else None,
            seal(cipher, endpoint, previous) if previous else None,
            row["secret"],
            row["previous_secret"],
            row["secret_encrypted"],
            row["previous_secret_encrypted"],
        )
        if status == "UPDATE 1":
            if plain:
                report.encrypted_plaintext += 1
            else:
                report.reencrypted += 1
    return report


async def encrypt_plaintext_at_start(
    pool: asyncpg.Pool, cipher: CredentialCipher | None, service: str
) -> None:
    """At a service's start: encrypt the secrets stored in plain text, if any (never fails the
    start: without a key, or with rows no key opens, it logs what is left to do)."""
    if cipher is None:
        left = await pool.fetchval(
            "SELECT count(*) FROM webhook_endpoints WHERE secret IS NOT NULL OR previous_secret IS NOT NULL"
        )
        if left:
            log.error(
                "webhook secrets stored in plain text and CRM_CREDENTIALS_KEY is not set: they are not "
                "used to sign until encrypted",
                extra={"service": service, "endpoints": left},
            )
        return
    report = await encrypt_stored_secrets(pool, cipher, rotate=False)
    if report.encrypted_plaintext or report.unreadable:
        log.warning(
            "webhook secrets stored in plain text encrypted",
            extra={
                "service": service,
                "encrypted": report.encrypted_plaintext,
                "unreadable_endpoints": report.unreadable,
            },
        )
