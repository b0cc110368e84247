"""Follow-up cadences on the real stack: gateway and crm_sync as processes, the GHL sandbox,
days that last DAY seconds.

A lead that never answers gets exactly three GHL tasks (and workflow enrolments and
lead.follow_up_due webhooks) at its qualification plus 3, 7 and 30 days, although crm_sync is
killed between its steps; a lead that replies on GHL (a signed InboundMessage webhook) and one
that says no through our API are never followed up again after their first step. GHL webhooks
with a bad signature, an old timestamp or a replayed webhookId are refused.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from jorge_runtime.settings import Settings
from schemas.limits import GENERAL
from schemas.topics import LEAD_FOLLOW_UP_DUE, TopicNames
from services.gateway.tenancy import TenancyStore
from tests.support.ghl import Sandbox, publish_qualified, qualified_event, topic_records
from tests.support.services import ServiceProcess
from tests.support.waiting import eventually
from tests.support.webhook_receiver import Receiver

DAY = 2.0  # seconds: the 30-day step comes a minute after qualification
OFFSETS = (3, 7, 30)
# The leads that engage are hot, with a second step far off: their stop travels through Kafka and
# may take seconds on a loaded machine, and what is tested is that nothing runs after it lands.
ENGAGING_OFFSETS = (3, 45, 60)
# A minute of scaled days, a crash and two restarts: more than the default per-test timeout when loaded.
pytestmark = pytest.mark.timeout(600)


async def sandbox_key(sandbox: Sandbox) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        return str((await http.get(f"{sandbox.url}/_sandbox/webhook-key")).json()["public_key"])


@pytest.fixture
async def fu_settings(settings: Settings, sandbox: Sandbox, organization: str) -> Settings:
    return settings.model_copy(
        update={
            "ghl_base_url": sandbox.url,
            "ghl_token": SecretStr(f"token-{organization}"),
            "ghl_organization": organization,
            "ghl_location_id": f"loc-{organization}",
            "ghl_budget_burst": 1000,
            "ghl_budget_interval_ms": 1000,
            "crm_retry_delays_seconds": "0.3,0.6,1,1,1",
            "follow_up_day_seconds": DAY,
            "follow_up_poll_seconds": 0.2,
            "follow_up_lease_seconds": 10,
            "ghl_webhook_public_key": await sandbox_key(sandbox),
            "webhook_allowed_subnets": "127.0.0.0/8",
            "webhook_dispatch_poll_seconds": 0.1,
        }
    )


@pytest.fixture(autouse=True)
async def generous_limits(pool: asyncpg.Pool, organization: str) -> None:
    for name in GENERAL:
        await TenancyStore(pool).set_rate_limit(organization, name, 100_000)


@pytest.fixture
async def fu_gateway(
    fu_settings: Settings, topics: TopicNames, log_dir: Path
) -> AsyncIterator[ServiceProcess]:
    service = await ServiceProcess.gateway(fu_settings, log_dir).start()
    yield service
    service.stop()


@pytest.fixture
async def api(fu_gateway: ServiceProcess, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=fu_gateway.base_url, timeout=10, headers={"Authorization": f"Bearer {api_key}"}
    ) as http:
        yield http


async def send_ghl_webhook(
    sandbox: Sandbox, url: str, event: dict[str, Any], **options: Any
) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=20) as http:
        response = await http.post(
            f"{sandbox.url}/_sandbox/webhooks/send", json={"url": url, "event": event, **options}
        )
        response.raise_for_status()
        return dict(response.json())


def parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


async def test_three_steps_for_the_silent_lead_none_after_a_reply_nothing_lost_or_repeated_on_restart(
    fu_settings: Settings,
    topics: TopicNames,
    organization: str,
    sandbox: Sandbox,
    api: httpx.AsyncClient,
    fu_gateway: ServiceProcess,
    log_dir: Path,
) -> None:
    bootstrap = fu_settings.kafka_bootstrap_servers
    assert bootstrap
    location = f"loc-{organization}"
    put = await api.put(
        "/v1/follow-ups/settings",
        json={
            "cadence_days": {"default": list(OFFSETS), "hot": list(ENGAGING_OFFSETS)},
            "workflow_id": "wf-nurture",
            "skip_late_after_days": 20,
        },
    )
    assert put.status_code == 200, put.text
    crm_sync = await ServiceProcess.worker("crm_sync", fu_settings, log_dir).start()
    try:
        async with Receiver() as subscriber:
            registered = await api.post(
                "/v1/webhooks/register", json={"url": subscriber.url(), "events": ["lead.follow_up_due"]}
            )
            assert registered.status_code == 201, registered.text
            silent = qualified_event(organization, 1, hot=False)
            replier, refuser = (qualified_event(organization, n, hot=True) for n in (2, 3))
            await publish_qualified(bootstrap, topics, [silent, replier, refuser])

            async def contacts() -> dict[str, dict[str, Any]]:
                return {c["email"]: c for c in await sandbox.contacts(location)}

            async def first_tasks() -> dict[str, dict[str, Any]] | None:
                found = await contacts()
                emails = [f"lead{n}@example.com" for n in (1, 2, 3)]
                return found if all(len(found.get(e, {}).get("tasks", [])) >= 1 for e in emails) else None

            found = await eventually(first_tasks, 60 + OFFSETS[0] * DAY, "every lead's first task")

            # The replier answers on GHL (a signed InboundMessage); the refuser through our API.
            inbound = {
                "type": "InboundMessage",
                "locationId": location,
                "contactId": found["lead2@example.com"]["id"],
                "body": "Yes, call me tomorrow",
                "direction": "inbound",
                "messageType": "SMS",
            }
            sent = await send_ghl_webhook(sandbox, f"{fu_gateway.base_url}/v1/ghl/webhooks", inbound)
            assert sent["status"] == 202, sent
            said_no = await api.post(
                f"/v1/leads/{refuser.payload.lead.lead_id}/events", json={"type": "not_interested"}
            )
            assert said_no.status_code == 202, said_no.text

            async def stopped(lead_id: str) -> dict[str, Any] | None:
                plan = (await api.get(f"/v1/leads/{lead_id}/follow-ups")).json()
                return plan if plan["status"] == "stopped" else None

            replied = await eventually(lambda: stopped(replier.payload.lead.lead_id), 90, "the reply to stop")
            refused = await eventually(lambda: stopped(refuser.payload.lead.lead_id), 90, "the no to stop")
            assert replied["stop_reason"] == "replied" and refused["stop_reason"] == "not_interested"

            # A crash between the silent lead's steps: its second step falls due while crm_sync is down.
            crm_sync.kill()
            second_due = silent.payload.completed_at + timedelta(seconds=OFFSETS[1] * DAY + 1)
            # Down until the step has fallen due (a deadline, not a duration).
            await asyncio.sleep(max(0.0, (second_due - datetime.now(UTC)).total_seconds()))
            await crm_sync.start()

            silent_id = silent.payload.lead.lead_id

            async def completed() -> dict[str, Any] | None:
                plan = (await api.get(f"/v1/leads/{silent_id}/follow-ups")).json()
                return plan if plan["status"] == "completed" else None

            plan = await eventually(completed, 120 + OFFSETS[-1] * DAY, "the silent lead's last step")
            await subscriber.wait_for(3, timeout=30)
            await asyncio.sleep(3 * fu_settings.follow_up_poll_seconds + 1)  # anything extra would show now
    finally:
        crm_sync.stop()

    start = silent.payload.completed_at
    assert [s["status"] for s in plan["steps"]] == ["done", "done", "done"]
    for step, offset in zip(plan["steps"], OFFSETS, strict=True):
        assert parse(step["due_at"]) == start + timedelta(seconds=offset * DAY)
        assert parse(step["done_at"]) >= parse(step["due_at"])
    final = await contacts()
    tasks = final["lead1@example.com"]["tasks"]
    assert len(tasks) == 3, tasks
    assert sorted(parse(t["dueDate"]) for t in tasks) == [start + timedelta(seconds=d * DAY) for d in OFFSETS]
    assert [w["workflowId"] for w in final["lead1@example.com"]["workflows"]] == ["wf-nurture"] * 3
    for email in ("lead2@example.com", "lead3@example.com"):
        assert len(final[email]["tasks"]) == 1, final[email]["tasks"]
    for stopped_plan in (replied, refused):
        first, *rest = stopped_plan["steps"]
        # Done, or cancelled by a stop that arrived while its task was being written (the task
        # id is kept, no webhook is sent); nothing after it ran.
        assert first["status"] in ("done", "cancelled") and first["ghl_task_id"], first
        assert [s["status"] for s in rest] == ["cancelled", "cancelled"]

    # Subscribers got one lead.follow_up_due per step done: 3 + 1 + 1, each once.
    bodies = [json.loads(r.body) for r in subscriber.requests]
    done = sum(p["steps"][0]["status"] == "done" for p in (replied, refused))
    assert len(bodies) == 3 + done and {b["event"] for b in bodies} == {"lead.follow_up_due"}
    per_lead = sorted((b["data"]["lead_id"], b["data"]["step_number"]) for b in bodies)
    assert [s for s in per_lead if s[0] == silent_id] == [(silent_id, 1), (silent_id, 2), (silent_id, 3)]
    assert len(set(per_lead)) == len(per_lead)
    records = await topic_records(bootstrap, topics(LEAD_FOLLOW_UP_DUE))
    assert len({r.json()["event_id"] for r in records}) == 3 + done


async def test_settings_come_back_exactly_as_they_were_sent(api: httpx.AsyncClient) -> None:
    # Schemathesis found a GET that failed after a PUT of a tiny skip_late_after_days: the
    # column was single precision, stored it as 0, and 0 is not a valid answer.
    sent = {
        "cadence_days": {"default": [1.1, 2.5e-7, 365], "hot": [0.3]},
        "time_zone": "Europe/Paris",
        "quiet_hours": {"start_hour": 21, "end_hour": 8},
        "workflow_id": "wf-nurture",
        "skip_late_after_days": 1e-50,
    }
    put = await api.put("/v1/follow-ups/settings", json=sent)
    assert put.status_code == 200 and put.json() == sent, put.text
    got = await api.get("/v1/follow-ups/settings")
    assert got.status_code == 200 and got.json() == sent, got.text


async def test_ghl_webhooks_with_a_bad_signature_an_old_timestamp_or_a_replayed_id_are_refused(
    fu_settings: Settings, organization: str, sandbox: Sandbox, fu_gateway: ServiceProcess
) -> None:
    url = f"{fu_gateway.base_url}/v1/ghl/webhooks"
    event = {"type": "ContactDndUpdate", "locationId": f"loc-{organization}", "id": "contact-1", "dnd": True}

    tampered = await send_ghl_webhook(sandbox, url, event, tamper=True)
    assert tampered["status"] == 401 and tampered["body"]["error"] == "invalid_signature", tampered
    old = await send_ghl_webhook(
        sandbox, url, event, age_seconds=fu_settings.ghl_webhook_tolerance_seconds + 60
    )
    assert old["status"] == 401 and old["body"]["error"] == "stale_timestamp", old
    assert old["body"]["message"]
    async with httpx.AsyncClient(timeout=10) as http:
        unsigned = await http.post(
            url, json={**event, "timestamp": old["sent"]["timestamp"], "webhookId": "x"}
        )
    assert unsigned.status_code == 401 and unsigned.json()["error"] == "invalid_signature"

    first = await send_ghl_webhook(sandbox, url, event, webhook_id="wh-replayed-1")
    assert first["status"] == 202 and first["body"]["status"] == "accepted", first
    again = await send_ghl_webhook(sandbox, url, event, webhook_id="wh-replayed-1")
    assert again["status"] == 409 and again["body"]["error"] == "webhook_replayed", again

    other = await send_ghl_webhook(sandbox, url, {"type": "ContactTagUpdate", "locationId": "x"})
    assert other["status"] == 202 and other["body"]["status"] == "ignored", other
