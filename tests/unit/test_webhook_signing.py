"""Standard Webhooks signing: the reference verifier (PyPI standardwebhooks) accepts our headers."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from schemas.webhooks import generate_secret
from services.crm_sync.webhook_delivery.signing import active_secrets, sign, webhook_headers

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_known_vector_of_the_standard() -> None:
    # The example of the Standard Webhooks specification and reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_reference_verifier_accepts_our_headers() -> None:
    secret = generate_secret()
    body = json.dumps({"event": "lead.qualified", "data": {"lead_id": "lead-001", "name": "María"}}).encode()
    headers = webhook_headers([secret], "msg_0123", int(time.time()), body)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert Webhook(secret).verify(body, headers) == json.loads(body)


def test_a_tampered_body_or_another_secret_is_rejected() -> None:
    secret = generate_secret()
    headers = webhook_headers([secret], "msg_0123", int(time.time()), b'{"a":1}')
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a":2}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(b'{"a":1}', headers)


def test_during_a_rotation_both_secrets_sign_until_the_overlap_ends() -> None:
    old, new = generate_secret(), generate_secret()
    signing = active_secrets(new, old, NOW + timedelta(hours=1), NOW)
    assert signing == [new, old]
    body = b'{"event":"webhook.test"}'
    headers = webhook_headers(signing, "msg_rot", int(time.time()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)  # a receiver still on the old secret
    Webhook(new).verify(body, headers)  # and one already switched
    assert active_secrets(new, old, NOW - timedelta(seconds=1), NOW) == [new]
    assert active_secrets(new, None, None, NOW) == [new]


def test_the_key_is_the_decoded_secret_not_its_text() -> None:
    key = b"k" * 32
    secret = "whsec_" + base64.b64encode(key).decode()
    import hashlib
    import hmac

    expected = base64.b64encode(hmac.new(key, b"msg_1.5.{}", hashlib.sha256).digest()).decode()
    assert sign(secret, "msg_1", 5, b"{}") == f"v1,{expected}"
