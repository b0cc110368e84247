"""Encryption at rest of the organisations' GHL tokens (pure: no I/O).

Fernet (AES-128-CBC + HMAC-SHA256, from the `cryptography` library) through MultiFernet:
CRM_CREDENTIALS_KEY holds one or more comma-separated keys; the first encrypts, every one
decrypts, so a key is rotated by putting a new one first, re-encrypting (`jorge crm credentials
rotate`), then dropping the old one. The ciphertext also names the organisation it belongs to,
so a token copied into another organisation's row is refused rather than used.
"""

from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from jorge_runtime.settings import ConfigError


class CredentialsUnreadable(Exception):
    """An organisation's stored token cannot be decrypted: no key configured, no configured key
    opens it, or it belongs to another organisation. The message never holds the token."""


def generate_key() -> str:
    """A new random Fernet key (url-safe base64 of 32 bytes), as CRM_CREDENTIALS_KEY takes it."""
    return Fernet.generate_key().decode()


class CredentialCipher:
    """Encrypts and decrypts GHL tokens with the keys of CRM_CREDENTIALS_KEY."""

    def __init__(self, keys: SecretStr) -> None:
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
    def from_setting(cls, keys: SecretStr | None) -> CredentialCipher | None:
        """The cipher of the setting, or None when CRM_CREDENTIALS_KEY is unset."""
        return cls(keys) if keys is not None else None

    def encrypt(self, organization_id: str, token: SecretStr) -> bytes:
        """The token, sealed with the first key and bound to the organisation."""
        plain = json.dumps({"organization_id": organization_id, "token": token.get_secret_value()})
        return self._fernet.encrypt(plain.encode())

    def decrypt(self, organization_id: str, sealed: bytes) -> SecretStr:
        """The organisation's token; CredentialsUnreadable if no key opens it or it is another's."""
        try:
            opened = json.loads(self._fernet.decrypt(bytes(sealed)))
        except InvalidToken:
            raise CredentialsUnreadable(
                f"none of the {self.key_count} key(s) in CRM_CREDENTIALS_KEY decrypts this organisation's "
                "GHL token (wrong key, or the key that encrypted it was removed)"
            ) from None
        if opened.get("organization_id") != organization_id:
            raise CredentialsUnreadable("the stored GHL token was encrypted for another organisation")
        return SecretStr(str(opened["token"]))

    def rotate(self, organization_id: str, sealed: bytes) -> bytes:
        """The same token re-encrypted with the first key (checked to belong to the organisation)."""
        return self.encrypt(organization_id, self.decrypt(organization_id, sealed))
