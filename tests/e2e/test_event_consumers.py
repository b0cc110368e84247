"""A consumer team's view: the contract served next to /docs, the example consumer and `jorge events
tail` reading real events that a lead posted to the gateway made the qualifier publish."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx

from jorge_cli.contract import ASYNCAPI_JSON, REPO
from jorge_runtime.settings import Settings
from tests.support.leads import HOT_BUYER, wait_until_qualified
from tests.support.services import ServiceProcess, run_jorge, settings_env


async def test_consumer_team_reads_real_events(
    client: httpx.AsyncClient,
    qualifier: ServiceProcess,
    settings: Settings,
    organization: str,
    tmp_path: Path,
) -> None:
    # The contract is served next to /docs, without an API key.
    async with httpx.AsyncClient(base_url=str(client.base_url), timeout=10) as anonymous:
        served = await anonymous.get("/asyncapi.json")
        assert served.status_code == 200
        assert served.json() == json.loads(ASYNCAPI_JSON.read_text(encoding="utf-8"))
        page = await anonymous.get("/asyncapi")
        assert page.status_code == 200 and "AsyncApiStandalone.render" in page.text

    response = await client.post("/v1/leads/qualify", json=HOT_BUYER)
    assert response.status_code == 201, response.text
    await wait_until_qualified(client, HOT_BUYER["lead_id"])

    # The example consumer, in a group of its own, reads the lead.qualified event once.
    env = settings_env(settings) | {"CONSUMER_GROUP": f"{settings.kafka_consumer_group_prefix}acme"}
    example = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "examples/consumer.py", "--max-events", "1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert example.returncode == 0, example.stderr
    handled = json.loads(example.stdout.splitlines()[-1])
    assert handled["lead_id"] == HOT_BUYER["lead_id"] and handled["organization_id"] == organization
    assert handled["intent"] == "buyer_intent" and handled["temperature"] == "hot"

    # `jorge events tail`: decoded, PII redacted unless asked, filtered by organisation.
    args = (
        "events",
        "tail",
        "lead.qualified",
        "--from-beginning",
        "--organization",
        organization,
        "--limit",
        "1",
    )
    tailed = await asyncio.to_thread(run_jorge, settings, tmp_path, *args)
    assert tailed.returncode == 0, tailed.stderr
    line = json.loads(tailed.stdout)
    assert line["event"]["event_id"] == handled["event_id"] and line["key"] == HOT_BUYER["lead_id"]
    assert line["event"]["payload"]["lead"]["email"] == "[EMAIL]"
    assert line["event"]["payload"]["lead"]["phone"] == "[PHONE]"
    assert "+1909" not in tailed.stdout and "maria@" not in tailed.stdout
    shown = await asyncio.to_thread(run_jorge, settings, tmp_path, *args, "--show-pii")
    assert json.loads(shown.stdout)["event"]["payload"]["lead"]["email"] == HOT_BUYER["email"]
