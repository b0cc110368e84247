"""The qualifier worker on the real stack with Claude played by the local fake Messages API."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anthropic
import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from jorge_runtime.settings import Settings
from sandboxes.fake_anthropic import FakeAnthropic, MalformedToolInput, RateLimited, Slow
from schemas.leads import LeadQualificationRequested, LeadQualificationRequestedPayload, LeadToQualify
from schemas.topics import LEAD_QUALIFIED, TopicNames
from services.qualifier import backfill
from services.qualifier.claude import ClaudeConfig, ClaudeQualificationEngine
from services.qualifier.pricing import estimate_cost
from tests.support.fake_claude import REPLY, rules_responder
from tests.support.leads import publish_events, store_qualified, wait_for_completed
from tests.support.services import REPO, ServiceProcess, read_topic, settings_env


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(rules_responder) as server:
        yield server


@pytest.fixture
async def claude_qualifier(
    settings: Settings, topics: TopicNames, log_dir: Path, fake: FakeAnthropic
) -> AsyncIterator[ServiceProcess]:
    claude_settings = settings.model_copy(
        update={
            "anthropic_api_key": SecretStr("sk-ant-test-key"),
            "anthropic_base_url": fake.url,
            "claude_timeout": 1.5,
            "enable_progressive_skills": True,
            "track_token_savings": True,
        }
    )
    service = ServiceProcess.worker("qualifier", claude_settings, log_dir)
    yield service
    service.stop()


def event(organization_id: str, name: str, message: str) -> LeadQualificationRequested:
    return LeadQualificationRequested(
        organization_id=organization_id,
        correlation_id=f"req-{name}",
        payload=LeadQualificationRequestedPayload(
            qualification_id=f"qual-{organization_id}-{name}",
            lead=LeadToQualify(lead_id=f"lead-{name}", phone="+19095550143", message=message),
        ),
    )


async def test_claude_decides_retries_429_and_falls_back_on_timeout_and_bad_answers(
    settings: Settings,
    topics: TopicNames,
    pool: asyncpg.Pool,
    organization: str,
    fake: FakeAnthropic,
    claude_qualifier: ServiceProcess,
) -> None:
    fake.script(RateLimited(retry_after=0.1), marker="marker-429")
    fake.script(Slow(seconds=4), marker="marker-slow")
    fake.script(MalformedToolInput(), marker="marker-bad")
    leads = {
        "ok": "Pre-approved for $700k, 3 bed in Upland, moving within 2 months",
        "429": "marker-429 Cash buyer, condo in Ontario asap",
        "slow": "marker-slow Selling my 4 bed in Fontana this spring",
        "bad": "marker-bad Looking to rent an apartment next month",
    }
    await publish_events(settings, topics, [event(organization, name, text) for name, text in leads.items()])
    await claude_qualifier.start()
    await wait_for_completed(pool, organization, len(leads))

    rows = {
        row["lead_id"].removeprefix("lead-"): row
        for row in await pool.fetch(
            """SELECT lead_id, engine, model, input_tokens, output_tokens, cache_read_tokens,
                      cache_write_tokens, cost_usd, fallback_reason, result
                 FROM qualifications WHERE organization_id = $1""",
            organization,
        )
    }
    for name in ("ok", "429"):
        row = rows[name]
        assert (row["engine"], row["model"], row["fallback_reason"]) == ("claude", "claude-sonnet-4-6", None)
        assert row["input_tokens"] > 0 and row["output_tokens"] > 0 and row["cost_usd"] > 0
        assert row["cache_read_tokens"] + row["cache_write_tokens"] > 0
        assert row["result"]["suggested_reply"] == REPLY
    assert rows["ok"]["result"]["temperature"] == "hot"
    assert (rows["slow"]["engine"], rows["slow"]["fallback_reason"]) == ("rules-v1", "timeout")
    assert rows["slow"]["result"]["intent"] == "seller_intent"  # the rules' own answer
    assert (rows["bad"]["engine"], rows["bad"]["fallback_reason"]) == ("rules-v1", "invalid_answer")
    assert rows["bad"]["output_tokens"] > 0  # the tokens the bad answer cost are still counted
    assert 429 in fake.statuses

    assert settings.kafka_bootstrap_servers
    records = await read_topic(
        settings.kafka_bootstrap_servers, topics(LEAD_QUALIFIED), until=lambda got: len(got) >= len(leads)
    )
    engines = {
        r.json()["payload"]["lead"]["lead_id"]: r.json()["payload"]["qualification"]["engine"]
        for r in records
    }
    assert engines == {
        "lead-ok": "claude",
        "lead-429": "claude",
        "lead-slow": "rules-v1",
        "lead-bad": "rules-v1",
    }

    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"{claude_qualifier.base_url}/metrics")).text
    assert 'jorge_claude_tokens_total{kind="cache_read"' in metrics or "jorge_claude_tokens_total" in metrics
    assert 'jorge_claude_fallbacks_total{reason="timeout"} 1.0' in metrics
    assert 'jorge_leads_qualified_total{engine="claude"' in metrics
    assert 'jorge_feature_flag_enabled{flag="ENABLE_PROGRESSIVE_SKILLS"' in metrics


async def test_backfill_requalifies_rules_leads_through_the_batches_api(
    pool: asyncpg.Pool, organization: str, fake: FakeAnthropic
) -> None:
    messages = {
        "a": "Pre-approved for $700k, 3 bed in Upland, moving within 2 months",
        "b": "Thinking of selling my condo in Ontario next year",
        "c": "marker-batch-bad Need a rental asap",
    }
    for name, text in messages.items():
        lead = LeadToQualify(lead_id=f"lead-{name}", email=f"{name}@example.com", message=text)
        await store_qualified(pool, organization, lead, f"qual-{organization}-{name}", f"req-{name}")
    fake.script(MalformedToolInput(), marker="marker-batch-bad")
    client = anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=fake.url, max_retries=0)
    claude = ClaudeQualificationEngine(client, ClaudeConfig())
    try:
        leads = await backfill.leads_to_backfill(
            pool, organization_id=organization, engine="rules-v1", limit=10
        )
        assert sorted(lead.lead_id for _, lead in leads) == ["lead-a", "lead-b", "lead-c"]
        batch_id = await backfill.submit(pool, client, claude, leads, organization_id=organization)
        await backfill.wait_until_ended(client, batch_id, poll_seconds=0.05)
        report = await backfill.collect(pool, client, batch_id)
        again = await backfill.collect(pool, client, batch_id)  # a resumed collect adds nothing
    finally:
        await client.close()

    assert (report.stored, report.invalid, report.errored) == (2, 1, 0)
    assert report.cost_usd > 0 and again.stored == 0
    rows = await pool.fetch(
        """SELECT lead_id, engine, cost_usd, input_tokens, output_tokens, cache_read_tokens,
                  cache_write_tokens FROM qualifications
            WHERE organization_id = $1 AND correlation_id = $2 ORDER BY lead_id""",
        organization,
        f"backfill:{batch_id}",
    )
    assert [(r["lead_id"], r["engine"]) for r in rows] == [("lead-a", "claude"), ("lead-b", "claude")]
    counts = {
        k: rows[0][k] for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    }
    batch_price = estimate_cost("claude-sonnet-4-6", **counts, batch=True)
    assert float(rows[0]["cost_usd"]) == pytest.approx(batch_price, abs=1e-6)
    assert batch_price == pytest.approx(estimate_cost("claude-sonnet-4-6", **counts) / 2)
    status = await pool.fetchval("SELECT status FROM qualifier_batches WHERE batch_id = $1", batch_id)
    assert status == "ended"
    left = await backfill.leads_to_backfill(pool, organization_id=organization, engine="rules-v1", limit=10)
    assert [lead.lead_id for _, lead in left] == ["lead-c"]  # its invalid answer kept the rules' result


async def test_jorge_backfill_submits_then_collects_from_the_command_line(
    settings: Settings, pool: asyncpg.Pool, organization: str, fake: FakeAnthropic, tmp_path: Path
) -> None:
    lead = LeadToQualify(
        lead_id="lead-cli", email="cli@example.com", message="Cash buyer, condo in Ontario asap"
    )
    await store_qualified(pool, organization, lead, f"qual-{organization}-cli", "req-cli")
    env = settings_env(settings) | {
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "ANTHROPIC_BASE_URL": fake.url,
        "JORGE_HOME": str(tmp_path),  # no running `jorge up` to borrow settings from
    }

    async def jorge(*args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "jorge_cli", *args, env=env, cwd=REPO,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0, output.decode()
        return output.decode()

    submitted = await jorge("backfill", "--organization", organization, "--no-wait")
    batch_id = submitted.split("submitted batch ")[1].split()[0]
    collected = await jorge("backfill", "--batch-id", batch_id, "--poll-seconds", "0.05")
    assert f"batch {batch_id}: stored 1, invalid answers 0, errored 0" in collected
    engine = await pool.fetchval(
        "SELECT engine FROM qualifications WHERE organization_id = $1 AND correlation_id = $2",
        organization,
        f"backfill:{batch_id}",
    )
    assert engine == "claude"
