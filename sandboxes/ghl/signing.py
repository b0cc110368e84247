"""GHL's webhook signatures, played by the sandbox: a local RSA key pair stands for GHL's (whose
public key WebhookAuthentication.md publishes); the gateway is given this public key in tests.
The signature is RSA-SHA256 (PKCS#1 v1.5) of the raw JSON body, base64, in `x-wh-signature`."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


class WebhookSigner:
    """Signs webhook bodies with a key pair made on first use (not at start: a loaded machine
    takes a while to make one, and most runs of the sandbox never sign)."""

    def __init__(self) -> None:
        self._private: rsa.RSAPrivateKey | None = None

    @property
    def _key(self) -> rsa.RSAPrivateKey:
        if self._private is None:
            self._private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self._private

    @property
    def public_pem(self) -> str:
        return (
            self._key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(self, body: bytes) -> str:
        return base64.b64encode(self._key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()

    def webhook(
        self, event: dict[str, Any], *, age_seconds: float = 0, webhook_id: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The body GHL would send (``timestamp`` and ``webhookId`` added) and its headers."""
        at = datetime.now(UTC) - timedelta(seconds=age_seconds)
        payload = {
            **event,
            "timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "webhookId": webhook_id or uuid.uuid4().hex,
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        return body, {"content-type": "application/json", "x-wh-signature": self.sign(body)}
