"""Prompt tokens per lead with and without progressive skills, and the cost of model routing.

For every lead of the labelled eval set (services/qualifier/evals/leads.jsonl) it builds the
exact request the Claude engine would send twice: with every skill section (the default) and
with ENABLE_PROGRESSIVE_SKILLS (only the sections the lead needs), and counts its input tokens.
With ANTHROPIC_API_KEY set the counts come from the API (`messages.count_tokens`, Anthropic's
tokenizer); without it from the same estimate the local fake API uses (JSON characters / 4),
which is fine for a ratio of two prompts made of the same kind of text.

It also prices 1,000 leads under the four combinations of ENABLE_PROGRESSIVE_SKILLS and
ENABLE_AGENT_MESH (AGENT_MESH_ROUTING=cost_aware), in steady state: the stable prefix is read
from the prompt cache when it is at least the model's minimum cacheable length (else it is
plain input: caching silently does nothing), the lead's own turn is uncached input and the
answer is OUTPUT_TOKENS long.

Run from the repository root:
    .venv/bin/python -m bench.prompt_tokens [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
from collections import defaultdict
from datetime import date
from typing import Any

from schemas.leads import LeadToQualify
from services.qualifier.evaluation import load_eval_set
from services.qualifier.pricing import estimate_cost, min_cacheable_tokens
from services.qualifier.prompts import build_request, estimate_request_tokens, render_lead
from services.qualifier.routing import choose_model
from services.qualifier.rules import qualify_lead
from services.qualifier.skills import ALL_SKILLS, select_skills

LARGE, SMALL = "claude-sonnet-4-6", "claude-haiku-4-5"
OUTPUT_TOKENS = 350  # a filled qualification plus a two-sentence reply
TODAY = date(2026, 11, 23)


async def _counter() -> tuple[str, Any]:
    key = os.environ.get("ANTHROPIC_API_KEY")
    if not key:
        return "estimate (JSON characters / 4)", None
    import anthropic

    client = anthropic.AsyncAnthropic(api_key=key, base_url=os.environ.get("ANTHROPIC_BASE_URL") or None)
    return "messages.count_tokens", client


async def _count(client: Any, request: dict[str, Any]) -> int:
    if client is None:
        return estimate_request_tokens(request)
    fields = ("model", "system", "tools", "tool_choice", "messages")
    answer = await client.messages.count_tokens(**{k: request[k] for k in fields})
    return int(answer.input_tokens)


def _lead_cost(model: str, request: dict[str, Any], *, warm: bool) -> tuple[float, bool]:
    """Cost of one lead and whether its prefix is long enough to be cached.

    ``warm``: the prefix is read from the cache (steady traffic); else every lead writes it
    (traffic sparser than one lead per cache TTL, where caching costs 1.25x input).
    """
    turn = estimate_request_tokens({"messages": request["messages"]})
    prefix = estimate_request_tokens({**request, "messages": []})
    if prefix < min_cacheable_tokens(model):
        return estimate_cost(model, input_tokens=turn + prefix, output_tokens=OUTPUT_TOKENS), False
    cost = estimate_cost(
        model,
        input_tokens=turn,
        output_tokens=OUTPUT_TOKENS,
        cache_read_tokens=prefix if warm else 0,
        cache_write_tokens=0 if warm else prefix,
    )
    return cost, True


async def measure() -> dict[str, Any]:
    """Token counts per lead and category, the progressive/full ratio, and routing costs."""
    method, client = await _counter()
    per_category: dict[str, list[tuple[int, int]]] = defaultdict(list)
    costs: dict[str, float] = defaultdict(float)
    cold_costs: dict[str, float] = defaultdict(float)
    cached: dict[str, int] = defaultdict(int)
    small = 0
    cases = load_eval_set()
    for case in cases:
        lead = LeadToQualify(lead_id=case.id, message=case.message, source=case.source)
        hint = qualify_lead(lead, today=TODAY)
        full = build_request(lead, model=LARGE, skills=ALL_SKILLS, today=TODAY)
        progressive = build_request(lead, model=LARGE, skills=select_skills(lead, hint), today=TODAY)
        per_category[case.category].append((await _count(client, full), await _count(client, progressive)))
        route = choose_model(
            lead, hint, large_model=LARGE, small_model=SMALL, mesh_enabled=True, routing="cost_aware"
        )
        small += route.small
        for name, model, request in (
            ("full_fixed", LARGE, full),
            ("progressive_fixed", LARGE, progressive),
            ("full_cost_aware", route.model, full),
            ("progressive_cost_aware", route.model, progressive),
        ):
            cost, was_cached = _lead_cost(model, request, warm=True)
            costs[name] += cost
            cached[name] += was_cached
            cold_costs[name] += _lead_cost(model, request, warm=False)[0]
    if client is not None:
        await client.close()
    pairs = [pair for rows in per_category.values() for pair in rows]
    full_mean = statistics.mean(f for f, _ in pairs)
    progressive_mean = statistics.mean(p for _, p in pairs)
    lead_turn = statistics.mean(
        len(render_lead(LeadToQualify(lead_id="x", message=c.message), TODAY)) for c in cases
    )
    return {
        "method": method,
        "leads": len(pairs),
        "full_tokens_per_lead": round(full_mean, 1),
        "progressive_tokens_per_lead": round(progressive_mean, 1),
        "progressive_over_full": round(progressive_mean / full_mean, 3),
        "lead_turn_chars": round(lead_turn, 1),
        "by_category": {
            category: {
                "leads": len(rows),
                "full": round(statistics.mean(f for f, _ in rows), 1),
                "progressive": round(statistics.mean(p for _, p in rows), 1),
                "ratio": round(statistics.mean(p for _, p in rows) / statistics.mean(f for f, _ in rows), 3),
            }
            for category, rows in sorted(per_category.items())
        },
        "small_model_share": round(small / len(pairs), 3),
        "usd_per_1000_leads": {
            name: {
                "usd": round(cost / len(pairs) * 1000, 3),
                "over_full_fixed": round(cost / costs["full_fixed"], 3),
                "prefix_cached_share": round(cached[name] / len(pairs), 3),
                "cold_cache_usd": round(cold_costs[name] / len(pairs) * 1000, 3),
                "cold_over_full_fixed": round(cold_costs[name] / cold_costs["full_fixed"], 3),
            }
            for name, cost in costs.items()
        },
    }


def main() -> None:
    """Print the figures as a table, or as one JSON object with --json."""
    parser = argparse.ArgumentParser(
        description="Prompt tokens per lead with and without progressive skills."
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(measure())
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"token counts: {result['method']}; {result['leads']} leads of the eval set")
    print(f"{'category':<12} {'leads':>5} {'full':>8} {'progressive':>12} {'ratio':>7}")
    for category, row in result["by_category"].items():
        print(f"{category:<12} {row['leads']:>5} {row['full']:>8} {row['progressive']:>12} {row['ratio']:>7}")
    print(
        f"{'all':<12} {result['leads']:>5} {result['full_tokens_per_lead']:>8} "
        f"{result['progressive_tokens_per_lead']:>12} {result['progressive_over_full']:>7}"
    )
    print(f"\ncost-aware routing sends {result['small_model_share']:.0%} of the leads to {SMALL}")
    print("$ per 1000 leads: warm = prefix read from the cache, cold = every lead writes it")
    print(f"{'prompt / routing':<24} {'cacheable':>10} {'warm $':>8} {'ratio':>6} {'cold $':>8} {'ratio':>6}")
    for name, row in result["usd_per_1000_leads"].items():
        print(
            f"{name:<24} {row['prefix_cached_share']:>10.0%} {row['usd']:>8} {row['over_full_fixed']:>6} "
            f"{row['cold_cache_usd']:>8} {row['cold_over_full_fixed']:>6}"
        )


if __name__ == "__main__":
    main()
