"""Estimated Claude spend from token counts (pure): list prices per million tokens.

Prices are the public list prices at the time of writing; an unknown model is priced as the
most expensive family it could be, so estimates err on the high side rather than hide spend.
Cache writes cost 1.25x input (5-minute TTL) or 2x (1-hour TTL), cache reads 0.1x, and the
Message Batches API halves everything.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelPrice:
    """US dollars per million input and output tokens."""

    input_per_mtok: float
    output_per_mtok: float


# Most specific prefix first: "claude-opus-4-5" must not match the older "claude-opus-4" row.
_PRICES: tuple[tuple[str, ModelPrice], ...] = (
    ("claude-haiku-4", ModelPrice(1.0, 5.0)),
    ("claude-3-5-haiku", ModelPrice(0.8, 4.0)),
    ("claude-3-haiku", ModelPrice(0.25, 1.25)),
    ("claude-sonnet", ModelPrice(3.0, 15.0)),
    ("claude-3-5-sonnet", ModelPrice(3.0, 15.0)),
    ("claude-3-7-sonnet", ModelPrice(3.0, 15.0)),
    ("claude-opus-4-5", ModelPrice(5.0, 25.0)),
    ("claude-opus-4-6", ModelPrice(5.0, 25.0)),
    ("claude-opus", ModelPrice(15.0, 75.0)),
)
_UNKNOWN = ModelPrice(15.0, 75.0)
CACHE_READ_FACTOR = 0.1
CACHE_WRITE_FACTOR = {"5m": 1.25, "1h": 2.0}
BATCH_FACTOR = 0.5


# Shortest prefix Anthropic will cache, per model family: a shorter one is billed as plain input.
_MIN_CACHEABLE: tuple[tuple[str, int], ...] = (
    ("claude-haiku-4-5", 4096),
    ("claude-opus-4-5", 4096),
    ("claude-opus-4-6", 4096),
    ("claude-sonnet-4-6", 2048),
    ("claude-3-5-haiku", 2048),
    ("claude-3-haiku", 2048),
)


def min_cacheable_tokens(model: str) -> int:
    """The shortest prompt prefix ``model`` caches (1,024 for the families not listed)."""
    return next((tokens for prefix, tokens in _MIN_CACHEABLE if model.startswith(prefix)), 1024)


def price_of(model: str) -> ModelPrice:
    """List price of ``model`` (matched by name prefix)."""
    return next((price for prefix, price in _PRICES if model.startswith(prefix)), _UNKNOWN)


def estimate_cost(
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    cache_ttl: str = "5m",
    batch: bool = False,
) -> float:
    """Estimated US dollars for one call's usage."""
    price = price_of(model)
    input_equivalent = (
        input_tokens
        + cache_read_tokens * CACHE_READ_FACTOR
        + cache_write_tokens * CACHE_WRITE_FACTOR.get(cache_ttl, 1.25)
    )
    dollars = (input_equivalent * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1e6
    return round(dollars * (BATCH_FACTOR if batch else 1.0), 8)
