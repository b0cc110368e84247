"""The rate limits and quotas of the public API (spec section 1.6), overridable per organisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scope = Literal["key", "organization", "client"]


@dataclass(frozen=True, slots=True)
class Limit:
    """One counter: who it counts (a key or the organisation), over which window, how many."""

    name: str
    scope: Scope
    window_seconds: int
    default: int
    description: str


_SECOND, _MINUTE, _DAY = 1, 60, 86_400
LIMITS: dict[str, Limit] = {
    limit.name: limit
    for limit in (
        Limit("key_per_second", "key", _SECOND, 10, "requests per second per API key"),
        Limit("key_per_minute", "key", _MINUTE, 100, "requests per minute per API key"),
        Limit("key_per_day", "key", _DAY, 10_000, "requests per day per API key"),
        Limit(
            "organization_per_minute", "organization", _MINUTE, 1_000, "requests per minute per organisation"
        ),
        Limit("organization_per_day", "organization", _DAY, 100_000, "requests per day per organisation"),
        Limit("lead_qualification_per_day", "organization", _DAY, 1_000, "lead qualifications per day"),
        Limit("buyer_matching_per_day", "organization", _DAY, 5_000, "buyer matchings per day"),
        Limit("seller_analysis_per_day", "organization", _DAY, 1_000, "seller analyses per day"),
    )
}
GENERAL = (
    "key_per_second",
    "key_per_minute",
    "key_per_day",
    "organization_per_minute",
    "organization_per_day",
)
# Endpoint quotas, by method and route template.
QUOTAS: dict[tuple[str, str], str] = {
    ("POST", "/v1/leads/qualify"): "lead_qualification_per_day",
    ("POST", "/v1/buyers/match-properties"): "buyer_matching_per_day",
    ("POST", "/v1/sellers/analyze"): "seller_analysis_per_day",
}

# POST /v1/auth/token, before any key is known: per client address and per presented key (valid
# or not); their maximums are gateway settings, not per-organisation overrides.
TOKEN_PER_CLIENT = Limit(
    "token_per_client_per_minute", "client", _MINUTE, 30, "token requests per minute from your address"
)
TOKEN_PER_KEY = Limit("token_per_key_per_minute", "key", _MINUTE, 10, "token requests per minute per API key")
