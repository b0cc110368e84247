"""The Claude engine with the real SDK against the local fake Messages API over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import anthropic
import pytest
from prometheus_client import REGISTRY

from jorge_runtime.flags import FeatureFlags
from sandboxes.fake_anthropic import FakeAnthropic, MalformedToolInput, Overloaded, RateLimited, Slow
from schemas.leads import LeadToQualify
from services.qualifier.breaker import CircuitBreaker
from services.qualifier.claude import ClaudeConfig, ClaudeQualificationEngine
from services.qualifier.prompts import TOOL_NAME
from tests.support.fake_claude import REPLY, rules_responder

HOT_BUYER = "Pre-approved for $750k, looking for a 3 bed in Upland, moving within 2 months"
LONG_VAGUE = "Hello there. " * 40 + "We might do something with our place at some point, not sure what."


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(rules_responder) as server:
        yield server


@pytest.fixture
async def fresh(fake: FakeAnthropic) -> FakeAnthropic:
    for _ in range(100):  # an answer a previous test gave up on may still be sleeping
        if fake.in_flight == 0:
            break
        await asyncio.sleep(0.05)
    fake.requests.clear()
    fake.statuses.clear()
    fake.max_in_flight = 0
    return fake


def make_engine(
    fake: FakeAnthropic, flags: FeatureFlags | None = None, **config: object
) -> ClaudeQualificationEngine:
    client = anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=fake.url, max_retries=0, timeout=10)
    return ClaudeQualificationEngine(client, ClaudeConfig(**{"timeout": 5.0, **config}), flags)  # type: ignore[arg-type]


@pytest.fixture
async def engine(fresh: FakeAnthropic) -> AsyncIterator[ClaudeQualificationEngine]:
    claude = make_engine(fresh)
    yield claude
    await claude.aclose()


def lead(message: str = HOT_BUYER, n: int = 1) -> LeadToQualify:
    return LeadToQualify(lead_id=f"lead-{n}", name="Maria Lopez", phone="+19095550143", message=message)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_claude_decides_with_a_forced_tool_and_records_tokens_and_cost(
    engine: ClaudeQualificationEngine, fresh: FakeAnthropic
) -> None:
    tokens_before = sample("jorge_claude_tokens_total", model="claude-sonnet-4-6", kind="input")
    q = await engine.qualify(lead())
    assert (q.engine, q.model, q.fallback_reason) == ("claude", "claude-sonnet-4-6", None)
    assert q.intent == "buyer_intent" and q.temperature == "hot"
    assert q.suggested_reply == REPLY
    assert q.usage is not None and q.usage.input_tokens > 0 and q.usage.output_tokens > 0
    assert q.usage.cost_usd > 0
    sent = fresh.requests[-1]
    assert sent["tool_choice"] == {"type": "tool", "name": TOOL_NAME}
    assert all(block["cache_control"] == {"type": "ephemeral"} for block in sent["system"])
    assert "+19095550143" not in str(sent) and "Maria" not in str(sent)  # no contact data leaves
    assert sample("jorge_claude_tokens_total", model="claude-sonnet-4-6", kind="input") > tokens_before


async def test_the_stable_prefix_is_written_to_the_cache_once_then_read(
    engine: ClaudeQualificationEngine, fresh: FakeAnthropic
) -> None:
    first = await engine.qualify(lead("Selling my 4 bed in Fontana this spring", 2))
    second = await engine.qualify(lead("Cash buyer, need a condo in Ontario asap", 3))
    assert first.usage and second.usage
    assert first.usage.cache_write_tokens + first.usage.cache_read_tokens > 1000
    assert second.usage.cache_read_tokens > 1000 and second.usage.cache_write_tokens == 0
    assert second.usage.cost_usd < first.usage.cost_usd or first.usage.cache_read_tokens > 0


async def test_429_and_529_are_retried_with_the_servers_retry_after(
    engine: ClaudeQualificationEngine, fresh: FakeAnthropic
) -> None:
    fresh.script(RateLimited(retry_after=0.05), Overloaded(retry_after=0.05))
    q = await engine.qualify(lead())
    assert fresh.statuses == [429, 529, 200]
    assert (q.engine, q.fallback_reason) == ("claude", None)


async def test_retries_are_bounded_then_the_rules_decide(fresh: FakeAnthropic) -> None:
    claude = make_engine(fresh, max_attempts=3)
    fresh.script(*[RateLimited(retry_after=0.01)] * 3)
    fallbacks = sample("jorge_claude_fallbacks_total", reason="rate_limited")
    q = await claude.qualify(lead())
    await claude.aclose()
    assert fresh.statuses == [429, 429, 429]
    assert (q.engine, q.fallback_reason, q.model) == ("rules-v1", "rate_limited", "claude-sonnet-4-6")
    assert q.intent == "buyer_intent" and q.usage is None
    assert sample("jorge_claude_fallbacks_total", reason="rate_limited") == fallbacks + 1


async def test_a_slow_answer_times_out_and_the_rules_decide(fresh: FakeAnthropic) -> None:
    claude = make_engine(fresh, timeout=0.3)
    fresh.script(Slow(seconds=2))
    q = await claude.qualify(lead())
    await claude.aclose()
    assert (q.engine, q.fallback_reason) == ("rules-v1", "timeout")
    assert q.temperature == "hot"  # the rules' full answer, not a placeholder


async def test_malformed_tool_input_falls_back_and_keeps_the_tokens_spent(
    engine: ClaudeQualificationEngine, fresh: FakeAnthropic
) -> None:
    fresh.script(MalformedToolInput())
    q = await engine.qualify(lead())
    assert (q.engine, q.fallback_reason) == ("rules-v1", "invalid_answer")
    assert q.usage is not None and q.usage.output_tokens > 0


async def test_concurrency_against_the_api_is_bounded(fresh: FakeAnthropic) -> None:
    claude = make_engine(fresh, max_concurrency=2)
    marker = "burst-of-leads"
    fresh.script(*[Slow(seconds=0.2)] * 6, marker=marker)
    results = await asyncio.gather(
        *(claude.qualify(lead(f"{marker} buy a home in Upland", n)) for n in range(6))
    )
    await claude.aclose()
    assert all(q.engine == "claude" for q in results)
    assert fresh.max_in_flight == 2


async def test_agent_mesh_and_progressive_skills_shape_the_request(fresh: FakeAnthropic) -> None:
    flags = FeatureFlags(progressive_skills=True, agent_mesh=True, track_token_savings=True)
    claude = make_engine(fresh, flags)
    saved_before = sample("jorge_claude_tokens_saved_total", model="claude-haiku-4-5")
    clear = await claude.qualify(lead())
    vague = await claude.qualify(lead(LONG_VAGUE, 2))
    await claude.aclose()
    assert (clear.engine, clear.model) == ("claude", "claude-haiku-4-5")
    assert vague.model == "claude-sonnet-4-6"
    clear_request, vague_request = fresh.requests[-2:]
    skills_text = clear_request["system"][1]["text"]
    assert '<skill name="buyer">' in skills_text and '<skill name="seller">' not in skills_text
    assert '<skill name="triage">' in vague_request["system"][1]["text"]
    assert sample("jorge_claude_tokens_saved_total", model="claude-haiku-4-5") > saved_before


async def test_after_consecutive_failures_leads_skip_claude_for_a_while(fresh: FakeAnthropic) -> None:
    client = anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=fresh.url, max_retries=0)
    claude = ClaudeQualificationEngine(
        client, ClaudeConfig(timeout=0.2), breaker=CircuitBreaker(threshold=2, cooldown=60)
    )
    fresh.script(Slow(seconds=1), Slow(seconds=1))
    reasons = [(await claude.qualify(lead(n=n))).fallback_reason for n in range(3)]
    await claude.aclose()
    assert reasons == ["timeout", "timeout", "circuit_open"]
    # circuit_open: the third lead never called the API. A timed-out one may not have reached it
    # either (on a loaded machine 0.2 s can pass in connecting), so at most two requests.
    assert len(fresh.requests) <= 2
