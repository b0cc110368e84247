"""Where webhooks may be sent: the URL policy of registration, and the address check the delivery
engine repeats after DNS resolution (loopback, private, link-local, CGNAT, multicast, reserved and
IPv4-mapped ranges are refused unless a subnet is explicitly allowed).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from typing import Literal
from urllib.parse import urlsplit

URL_MAX_LENGTH = 2048

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# Never a subscriber on the public internet: loopback, private, link-local (cloud metadata),
# CGNAT, documentation, benchmarking, multicast, reserved, and IPv6 forms that reach IPv4.
BLOCKED_NETWORKS: tuple[IpNetwork, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
        "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64",
        "2001::/23", "2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    )
)  # fmt: skip
_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)
_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x20\x7f\\]")


class WebhookUrlError(ValueError):
    """A URL refused as a webhook target; ``error`` is the API's machine-readable code."""

    def __init__(self, error: Literal["invalid_webhook_url", "webhook_url_not_allowed"], message: str):
        super().__init__(message)
        self.error = error
        self.message = message


def parse_subnets(text: str) -> tuple[IpNetwork, ...]:
    """Comma-separated CIDRs (e.g. ``127.0.0.0/8, ::1/128``) as networks; ValueError names a bad one."""
    networks = []
    for item in text.split(","):
        if item.strip():
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{item.strip()!r} is not a CIDR such as 127.0.0.0/8") from None
    return tuple(networks)


def is_blocked_address(address: IpAddress, allowed: Iterable[IpNetwork] = ()) -> bool:
    """True if a webhook must not be sent to ``address``: not public and not on the allowlist.

    The delivery engine applies it to the address actually connected to, after DNS.
    """
    if any(address.version == net.version and address in net for net in allowed):
        return False
    flags = (
        address.is_private, address.is_loopback, address.is_link_local, address.is_multicast,
        address.is_reserved, address.is_unspecified,
    )  # fmt: skip
    return (
        any(flags)
        or any(address.version == net.version and address in net for net in BLOCKED_NETWORKS)
        or (isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None)
    )


def _ip_literal(host: str) -> IpAddress | None:
    """The address a host names literally, including the legacy forms resolvers accept (127.1,
    2130706433, 0x7f.1), or None for a DNS name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def check_webhook_url(url: str, *, require_https: bool, allowed: Iterable[IpNetwork] = ()) -> str:
    """Return ``url`` if it may be registered as a webhook target, else raise WebhookUrlError.

    Refuses what is wrong on its face: another scheme, no host, credentials, over 2048
    characters, plain http when HTTPS is required, and a host that is (or, like `localhost`,
    always resolves to) a non-public address outside ``allowed``. DNS names are not resolved
    here: the delivery engine checks the address it connects to (DNS rebinding beats any check
    made now). Messages never quote the URL, which may carry tokens.
    """
    if len(url) > URL_MAX_LENGTH:
        raise WebhookUrlError("invalid_webhook_url", f"The URL is longer than {URL_MAX_LENGTH} characters.")
    if _UNSAFE_CHARACTERS.search(url):
        raise WebhookUrlError("invalid_webhook_url", "The URL contains spaces or control characters.")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise WebhookUrlError("invalid_webhook_url", "The URL cannot be parsed.") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookUrlError("invalid_webhook_url", "The URL must start with https:// (or http://).")
    if not host:
        raise WebhookUrlError("invalid_webhook_url", "The URL has no host.")
    if "@" in parts.netloc:
        raise WebhookUrlError(
            "invalid_webhook_url",
            "The URL must not contain credentials; authenticate deliveries by their signature.",
        )
    if require_https and parts.scheme != "https":
        raise WebhookUrlError("webhook_url_not_allowed", "This server only delivers webhooks over HTTPS.")
    host = host.rstrip(".")
    address = _ip_literal(host)
    if address is None and (host == "localhost" or host.endswith(".localhost")):
        address = ipaddress.IPv4Address("127.0.0.1")  # RFC 6761: always loopback
    if address is not None and is_blocked_address(address, allowed):
        raise WebhookUrlError(
            "webhook_url_not_allowed",
            "The URL points to a private, loopback, link-local or reserved address; "
            "webhooks are only sent to public addresses.",
        )
    return url


# --- API models ------------------------------------------------------------------------------
