"""Encryption at rest of secrets: the organisations' GHL tokens and the webhook endpoints'
signing secrets (pure: no I/O). Shared by crm_sync (reads both), the gateway (writes webhook
secrets) and the `jorge` command.

Fernet (AES-128-CBC + HMAC-SHA256, from the `cryptography` library) through MultiFernet:
CRM_CREDENTIALS_KEY holds one or more comma-separated keys; the first encrypts, every one
decrypts, so a key is rotated by putting a new one first, re-encrypting (`jorge crm credentials
rotate`), then dropping the old one. The ciphertext also names its owner (the organisation of a GHL
token, the endpoint of a webhook secret), so a secret copied into another row is refused rather
than used.
"""

from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from jorge_runtime.settings import ConfigError


class CredentialsUnreadable(Exception):
    """A stored secret cannot be decrypted: no key configured, no configured key opens it, or it
    belongs to another owner. The message never holds the secret."""


def generate_key() -> str:
    """A new random Fernet key (url-safe base64 of 32 bytes), as CRM_CREDENTIALS_KEY takes it."""
    return Fernet.generate_key().decode()


class CredentialCipher:
    """Encrypts and decrypts secrets with the keys of CRM_CREDENTIALS_KEY; ``subject`` names
    what is sealed, and whose, in error messages."""

    def __init__(self, keys: SecretStr, subject: str = "GHL token", owner: str = "organisation") -> None:
        self.subject, self.owner = subject, owner
        parts = [part.strip() for part in keys.get_secret_value().split(",") if part.strip()]
        if not parts:
            raise ConfigError("CRM_CREDENTIALS_KEY is empty")
        fernets = []
        for position, part in enumerate(parts, start=1):
            try:
                fernets.append(Fernet(part))
            except ValueError:
                # Say which key is wrong, never what it is.
                raise ConfigError(
                    f"CRM_CREDENTIALS_KEY: key {position} of {len(parts)} is not a Fernet key "
                    "(32 url-safe base64-encoded bytes; `jorge crm generate-key` makes one)"
                ) from None
        self._fernet = MultiFernet(fernets)
        self.key_count = len(fernets)

    @classmethod
    def from_setting(
        cls, keys: SecretStr | None, subject: str = "GHL token", owner: str = "organisation"
    ) -> CredentialCipher | None:
        """The cipher of the setting, or None when CRM_CREDENTIALS_KEY is unset."""
        return cls(keys, subject, owner) if keys is not None else None

    def encrypt(self, organization_id: str, token: SecretStr) -> bytes:
        """The secret, sealed with the first key and bound to its owner (``organization_id``:
        an organisation's id for a GHL token, an endpoint's id for a webhook secret)."""
        plain = json.dumps({"organization_id": organization_id, "token": token.get_secret_value()})
        return self._fernet.encrypt(plain.encode())

    def decrypt(self, organization_id: str, sealed: bytes) -> SecretStr:
        """The owner's secret; CredentialsUnreadable if no key opens it or it is another's."""
        try:
            opened = json.loads(self._fernet.decrypt(bytes(sealed)))
        except InvalidToken:
            raise CredentialsUnreadable(
                f"none of the {self.key_count} key(s) in CRM_CREDENTIALS_KEY decrypts this {self.owner}'s "
                f"{self.subject} (wrong key, or the key that encrypted it was removed)"
            ) from None
        if opened.get("organization_id") != organization_id:
            raise CredentialsUnreadable(f"the stored {self.subject} was encrypted for another {self.owner}")
        return SecretStr(str(opened["token"]))

    def rotate(self, organization_id: str, sealed: bytes) -> bytes:
        """The same secret re-encrypted with the first key (checked to belong to its owner)."""
        return self.encrypt(organization_id, self.decrypt(organization_id, sealed))
