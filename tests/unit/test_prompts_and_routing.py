"""Pure parts of the Claude qualifier: prompt, tool schema, answer validation, skills, routing,
pricing, the circuit breaker and feature flags."""

from __future__ import annotations

import logging
from datetime import date

import pytest

from jorge_runtime.flags import FeatureFlags
from jorge_runtime.settings import Settings
from schemas.leads import LeadToQualify
from schemas.qualification import TokenUsage
from services.qualifier.breaker import CircuitBreaker
from services.qualifier.pricing import estimate_cost, min_cacheable_tokens
from services.qualifier.prompts import (
    SERVER_FIELDS,
    TOOL_NAME,
    InvalidAnswer,
    build_request,
    estimate_request_tokens,
    parse_answer,
    qualification_tool_schema,
)
from services.qualifier.routing import choose_model
from services.qualifier.rules import qualify_lead
from services.qualifier.skills import ALL_SKILLS, select_skills

TODAY = date(2026, 11, 23)
VALID = {
    "intent": "buyer_intent",
    "temperature": "hot",
    "temperature_reasons": ["moving within 2 months", "pre-approved"],
    "timeline": "1_3_months",
    "timeline_months": 2,
    "financial_readiness": {"status": "pre_approved", "pre_approved": True, "budget_max": 750000},
    "property_preferences": {"bedrooms": 3, "areas": ["Upland"]},
    "next_action": "Schedule showing",
    "confidence": 0.8,
    "suggested_reply": "Great! Want to see homes in Upland this weekend?",
}


def lead(message: str) -> LeadToQualify:
    return LeadToQualify(lead_id="lead-1", name="Ana", phone="+19095550143", email="a@b.co", message=message)


def skills_for(message: str) -> tuple[str, ...]:
    return select_skills(lead(message), qualify_lead(lead(message), today=TODAY))


def test_tool_schema_is_the_qualification_minus_platform_fields() -> None:
    schema = qualification_tool_schema()
    assert set(schema["properties"]).isdisjoint(SERVER_FIELDS)
    assert {"intent", "temperature", "next_action", "confidence"} <= set(schema["required"])
    assert "suggested_reply" in schema["properties"]
    assert "$ref" not in str(schema) and "$defs" not in schema


def test_request_forces_the_tool_marks_the_prefix_for_caching_and_leaves_contacts_out() -> None:
    request = build_request(lead("Pre-approved, 3 bed in Upland"), model="m", today=TODAY, cache_ttl="1h")
    assert request["tool_choice"] == {"type": "tool", "name": TOOL_NAME}
    assert [tool["name"] for tool in request["tools"]] == [TOOL_NAME]
    assert all(block["cache_control"] == {"type": "ephemeral", "ttl": "1h"} for block in request["system"])
    user = request["messages"][0]["content"]
    assert "Today is 2026-11-23." in user and "Pre-approved, 3 bed in Upland" in user
    assert not any(secret in str(request) for secret in ("Ana", "+19095550143", "a@b.co"))


def test_a_valid_tool_call_becomes_the_qualification_and_platform_fields_cannot_be_forged() -> None:
    usage = TokenUsage(input_tokens=10, output_tokens=5, cost_usd=0.001)
    forged = {**VALID, "engine": "rules-v1", "fallback_reason": "made up"}
    block = {"type": "tool_use", "name": TOOL_NAME, "input": forged}
    q = parse_answer([{"type": "text", "text": "thinking"}, block], engine="claude", model="m", usage=usage)
    assert (q.engine, q.model, q.usage, q.fallback_reason) == ("claude", "m", usage, None)
    assert q.financial_readiness.budget_max == 750000 and q.suggested_reply


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ([{"type": "text", "text": str(VALID)}], "no record_qualification call"),
        ([{"type": "tool_use", "name": "other_tool", "input": VALID}], "no record_qualification call"),
        ([{"type": "tool_use", "name": TOOL_NAME, "input": "not an object"}], "not an object"),
        ([{"type": "tool_use", "name": TOOL_NAME, "input": {**VALID, "intent": "purchase"}}], "intent"),
        ([{"type": "tool_use", "name": TOOL_NAME, "input": {**VALID, "confidence": 7}}], "confidence"),
        ([{"type": "tool_use", "name": TOOL_NAME, "input": {"intent": "buyer_intent"}}], "temperature"),
    ],
)
def test_invalid_answers_are_refused(content: list[dict[str, object]], why: str) -> None:
    with pytest.raises(InvalidAnswer, match=why):
        parse_answer(content, engine="claude", model="m", usage=None)


def test_progressive_skills_load_only_what_the_lead_needs() -> None:
    assert skills_for("Pre-approved for 700k, want a 3 bed house to buy in Upland") == ("buyer", "financing")
    assert skills_for("I want to sell my house in Fontana within 3 months") == ("seller",)
    assert skills_for("Need a 2 bedroom apartment to rent next month") == ("renter",)
    assert "investor" in skills_for("Looking for a duplex with good cash flow, all cash")
    assert set(skills_for("info?")) >= {"triage", "buyer", "seller"}
    assert "multilingual" in skills_for("Quiero comprar una casa, estoy preaprobado")
    assert "multilingual" in skills_for("我们想在Chino Hills买一栋四房的房子")


def test_progressive_prompt_is_smaller_than_the_full_one() -> None:
    buyer = lead("Pre-approved for 700k, want a 3 bed house to buy in Upland")
    full = build_request(buyer, model="m", skills=ALL_SKILLS, today=TODAY)
    small = build_request(buyer, model="m", skills=("buyer", "financing"), today=TODAY)
    assert estimate_request_tokens(small) < 0.85 * estimate_request_tokens(full)


@pytest.mark.parametrize(
    ("message", "mesh", "model", "reason"),
    [
        ("Pre-approved for 700k, want a 3 bed house to buy in Upland in 2 months", False, "large", "fixed"),
        (
            "Pre-approved for 700k, want a 3 bed house to buy in Upland in 2 months",
            True,
            "small",
            "short_and_clear",
        ),
        ("Hello. " * 60 + "We want to buy a house", True, "large", "long_message"),
        ("call me", True, "large", "unclear_intent"),
        ("Sell our condo first then buy a house in Chino Hills", True, "large", "mixed_intent"),
        ("Quiero comprar una casa de 3 recamaras, estoy preaprobado", True, "large", "non_english"),
        ("we want to buy", True, "large", "few_facts"),
    ],
)
def test_cost_aware_routing(message: str, mesh: bool, model: str, reason: str) -> None:
    lead_ = lead(message)
    route = choose_model(
        lead_,
        qualify_lead(lead_, today=TODAY),
        large_model="large",
        small_model="small",
        mesh_enabled=mesh,
        routing="cost_aware",
    )
    assert (route.model, route.reason) == (model, reason)


def test_cost_estimates_follow_list_prices_cache_and_batch_discounts() -> None:
    assert estimate_cost("claude-sonnet-4-6", input_tokens=1_000_000, output_tokens=0) == pytest.approx(3.0)
    assert estimate_cost("claude-haiku-4-5", input_tokens=0, output_tokens=1_000_000) == pytest.approx(5.0)
    cached = estimate_cost("claude-sonnet-4-6", input_tokens=0, output_tokens=0, cache_read_tokens=1_000_000)
    written = estimate_cost(
        "claude-sonnet-4-6", input_tokens=0, output_tokens=0, cache_write_tokens=1_000_000
    )
    assert cached == pytest.approx(0.3) and written == pytest.approx(3.75)
    batch = estimate_cost("claude-sonnet-4-6", input_tokens=1_000_000, output_tokens=0, batch=True)
    assert batch == pytest.approx(1.5)
    assert estimate_cost("claude-unknown-9", input_tokens=1_000_000, output_tokens=0) >= 15.0


def test_flags_default_off_are_read_from_settings_and_logged_when_asked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert not any(FeatureFlags.from_settings(Settings(_env_file=None)).as_env().values())
    flags = FeatureFlags.from_settings(
        Settings(_env_file=None, enable_progressive_skills=True, log_feature_usage=True)
    )
    assert flags.progressive_skills and not flags.agent_mesh
    with caplog.at_level(logging.INFO, logger="jorge_runtime.flags"):
        flags.record_use("ENABLE_PROGRESSIVE_SKILLS", skills=["buyer"])
    assert any(getattr(r, "flag", None) == "ENABLE_PROGRESSIVE_SKILLS" for r in caplog.records)


def test_circuit_breaker_opens_after_consecutive_failures_and_half_opens_after_cooldown() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=3, cooldown=30, clock=lambda: now[0])
    for _ in range(2):
        assert breaker.allow()
        breaker.record(ok=False)
    breaker.record(ok=True)  # a success resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.record(ok=False)
    assert breaker.is_open and not breaker.allow()
    now[0] = 31
    assert breaker.allow()  # one trial call
    assert not breaker.allow()  # and only one
    breaker.record(ok=True)
    assert not breaker.is_open and breaker.allow()


def test_minimum_cacheable_prefix_by_model() -> None:
    assert min_cacheable_tokens("claude-haiku-4-5") == 4096
    assert min_cacheable_tokens("claude-sonnet-4-6") == 2048
    assert min_cacheable_tokens("claude-sonnet-4-5") == 1024
