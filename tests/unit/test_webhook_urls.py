"""The registration-time webhook URL policy and secret format (pure functions, no services)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import time

import pytest

from schemas.webhook_urls import WebhookUrlError, check_webhook_url, is_blocked_address, parse_subnets
from schemas.webhooks import InvalidWebhookSecret, check_secret, generate_secret


def refused(url: str, *, require_https: bool = False, allowed: str = "") -> str:
    with pytest.raises(WebhookUrlError) as caught:
        check_webhook_url(url, require_https=require_https, allowed=parse_subnets(allowed))
    return caught.value.error


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/jorge",
        "http://hooks.example.com:8080/in?token=abc",
        "https://8.8.8.8/hook",
        "https://[2606:4700:4700::1111]/hook",
        "https://crm.example.com./hook",
    ],
)
def test_public_urls_are_accepted(url: str) -> None:
    assert check_webhook_url(url, require_https=False) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/hook",
        "http://127.1/hook",  # legacy forms a resolver still reads as 127.0.0.1
        "http://2130706433/hook",
        "http://0x7f000001/hook",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.10/",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://100.64.0.1/",  # CGNAT
        "http://0.0.0.0/",
        "http://224.0.0.1/",  # multicast
        "http://240.0.0.1/",  # reserved
        "http://255.255.255.255/",
        "http://198.18.0.1/",
        "http://[::1]/",
        "http://[::]/",
        "http://[fc00::1]/",
        "http://[fd12:3456::1]/",
        "http://[fe80::1]/",
        "http://[fe80::1%25eth0]/",
        "http://[ff02::1]/",
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped
        "http://[::ffff:8.8.8.8]/",
        "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
        "http://localhost:8000/",
        "http://api.localhost/",
    ],
)
def test_non_public_addresses_are_not_allowed(url: str) -> None:
    assert refused(url) == "webhook_url_not_allowed"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "hooks.example.com/no-scheme",
        "https:///no-host",
        "https://user:pass@hooks.example.com/",
        "https://token@hooks.example.com/",
        "https://hooks.example.com:99999/",
        "http://[::1/",
        "https://hooks.example.com/a b",
        "https://hooks.example.com/\x00",
        "https://hooks.example.com\\@127.0.0.1/",
        "https://hooks.example.com/" + "a" * 2048,
    ],
)
def test_malformed_urls_are_invalid(url: str) -> None:
    assert refused(url) == "invalid_webhook_url"


def test_the_allowlist_opens_exactly_its_subnets() -> None:
    assert check_webhook_url(
        "http://127.0.0.1:9000/h", require_https=False, allowed=parse_subnets("127.0.0.0/8")
    )
    assert check_webhook_url(
        "http://localhost:9000/h", require_https=False, allowed=parse_subnets("127.0.0.0/8")
    )
    assert check_webhook_url(
        "http://[::1]/h", require_https=False, allowed=parse_subnets("127.0.0.0/8, ::1/128")
    )
    assert refused("http://10.0.0.1/", allowed="127.0.0.0/8") == "webhook_url_not_allowed"
    # A mapped address is IPv6: an IPv4 allowlist entry does not open it.
    assert refused("http://[::ffff:127.0.0.1]/", allowed="127.0.0.0/8") == "webhook_url_not_allowed"


def test_https_can_be_required() -> None:
    assert refused("http://hooks.example.com/", require_https=True) == "webhook_url_not_allowed"
    assert check_webhook_url("https://hooks.example.com/", require_https=True)


def test_messages_never_quote_the_url() -> None:
    with pytest.raises(WebhookUrlError) as caught:
        check_webhook_url("https://user:s3cr3t@hooks.example.com/", require_https=False)
    assert "s3cr3t" not in caught.value.message and "hooks.example.com" not in caught.value.message


def test_parse_subnets() -> None:
    assert parse_subnets("") == ()
    assert parse_subnets(" 127.0.0.0/8 , ::1/128 ") == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert parse_subnets("10.1.2.3/8") == (ipaddress.ip_network("10.0.0.0/8"),)
    with pytest.raises(ValueError, match="not a CIDR"):
        parse_subnets("127.0.0.0/8,localhost")


def test_blocked_address_is_the_delivery_time_check() -> None:
    assert is_blocked_address(ipaddress.ip_address("10.0.0.5"))
    assert not is_blocked_address(ipaddress.ip_address("93.184.216.34"))
    assert not is_blocked_address(ipaddress.ip_address("127.0.0.1"), parse_subnets("127.0.0.0/8"))


def test_generated_secrets_follow_standard_webhooks() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert check_secret(secret) == secret
    assert generate_secret() != secret


@pytest.mark.parametrize(
    "secret",
    [
        "your-webhook-secret",
        "whsec_" + base64.b64encode(b"x" * 23).decode(),  # too short
        "whsec_" + base64.b64encode(b"x" * 65).decode(),  # too long
        "whsec_not*base64!",
        "whsec_",
        "whsec_ünïcode",
    ],
)
def test_invalid_secrets_are_refused_without_being_quoted(secret: str) -> None:
    with pytest.raises(InvalidWebhookSecret) as caught:
        check_secret(secret)
    assert secret.removeprefix("whsec_") not in str(caught.value) or secret == "whsec_"


def test_a_secret_of_24_bytes_is_enough() -> None:
    assert check_secret("whsec_" + base64.b64encode(b"k" * 24).decode())


def test_a_secret_of_the_subscribers_own_is_the_raw_signing_key() -> None:
    from standardwebhooks import Webhook

    from services.crm_sync.webhook_delivery.signing import webhook_headers

    own = "your-webhook-secret-of-the-crm"  # 30 characters, not whsec_
    shown = check_secret(own)
    assert shown == "whsec_" + base64.b64encode(own.encode()).decode()
    body = b'{"event": "lead.qualified"}'
    headers = webhook_headers([shown], "msg_1", int(time.time()), body)
    # A Standard Webhooks library verifies with the whsec_ form shown at registration...
    assert Webhook(shown).verify(body, headers) == {"event": "lead.qualified"}
    # ...and a receiver that signs with the secret it chose computes the same signature.
    signed = f"msg_1.{headers['webhook-timestamp']}.".encode() + body
    mine = base64.b64encode(hmac.new(own.encode(), signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{mine}"


@pytest.mark.parametrize("secret", ["x" * 23, "y" * 201, "a-secret-with-a-bell-\x07-in-it-ok"])
def test_a_secret_of_ones_own_needs_24_to_200_printable_characters(secret: str) -> None:
    with pytest.raises(InvalidWebhookSecret) as caught:
        check_secret(secret)
    assert secret not in str(caught.value)
