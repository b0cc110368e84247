"""`jorge dlq list` and `jorge dlq replay` against crm_sync's real dead letters."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import asyncpg
from pydantic import SecretStr

from jorge_runtime.credential_cipher import CredentialCipher, generate_key
from jorge_runtime.settings import Settings
from schemas.leads import LeadQualified
from schemas.topics import CRM_LANE_STANDARD, CRM_RETRY_TOPICS, DEAD_LETTER, LEAD_QUALIFIED, TopicNames
from services.crm_sync.ghl.credential_store import CredentialStore
from tests.support.ghl import Sandbox, publish_qualified, qualified_event, topic_records
from tests.support.services import KafkaRecord, ServiceProcess, jorge, produce, read_topic, run_jorge
from tests.support.waiting import eventually


async def test_unauthorized_writes_are_listed_and_replayed_once_the_token_is_fixed(
    settings: Settings,
    topics: TopicNames,
    pool: asyncpg.Pool,
    organization: str,
    sandbox: Sandbox,
    tmp_path: Path,
) -> None:
    assert settings.kafka_bootstrap_servers
    key = SecretStr(generate_key())
    crm = settings.model_copy(
        update={
            "ghl_base_url": sandbox.url,
            "crm_retry_delays_seconds": "0.2,0.5,1,1,1",
            "crm_credentials_key": key,
        }
    )
    store = CredentialStore(pool, CredentialCipher(key))
    await store.save(organization, f"loc-{organization}", SecretStr("old-token"))
    await sandbox.revoke("old-token")
    worker = ServiceProcess.worker("crm_sync", crm, tmp_path)
    await worker.start()
    try:
        events = [qualified_event(organization, n, hot=n == 0) for n in range(3)]
        await publish_qualified(settings.kafka_bootstrap_servers, topics, events)

        async def three_dead() -> bool:
            count = await pool.fetchval(
                "SELECT count(*) FROM crm_dead_letters WHERE organization_id = $1", organization
            )
            return int(count) == 3

        await eventually(three_dead, what="3 dead letters")
        listed = json.loads(
            await asyncio.to_thread(
                jorge, crm, tmp_path, "dlq", "list", "--json", "--organization", organization
            )
        )
        assert len(listed) == 3
        assert {row["reason"] for row in listed} == {"ghl_unauthorized"}
        assert {row["event_id"] for row in listed} == {str(e.event_id) for e in events}
        assert all(row["attempts"] == 1 for row in listed)  # a 401 is not retried
        assert "old-token" not in worker.log_path.read_text()
        dead = await read_topic(
            settings.kafka_bootstrap_servers, topics(DEAD_LETTER), until=lambda got: len(got) >= 3
        )
        assert {r.headers["event-id"] for r in dead} == {str(e.event_id) for e in events}
        assert all(r.headers["dlq-consumer"] == "crm_sync" for r in dead)
        assert all(r.headers["dlq-reason"].startswith("ghl_unauthorized") for r in dead)

        await store.save(organization, f"loc-{organization}", SecretStr("new-token"))
        first = str(listed[0]["id"])
        out = await asyncio.to_thread(jorge, crm, tmp_path, "dlq", "replay", first)
        assert "replayed 1" in out

        async def contacts(n: int) -> bool:
            return len(await sandbox.contacts(f"loc-{organization}")) == n

        await eventually(lambda: contacts(1), what="the replayed contact")
        out = await asyncio.to_thread(
            jorge,
            crm,
            tmp_path,
            "dlq",
            "replay",
            "--reason",
            "ghl_unauthorized",
            "--organization",
            organization,
        )
        assert "replayed 2" in out
        await eventually(lambda: contacts(3), what="every replayed contact")
        synced = await sandbox.contacts(f"loc-{organization}")
        assert all(len(c["notes"]) == 1 for c in synced)
        assert "no dead letters" in await asyncio.to_thread(
            jorge, crm, tmp_path, "dlq", "list", "--organization", organization
        )
    finally:
        worker.stop()


#: Lead number -> the status the sandbox answers every call naming the lead's email with.
REJECTIONS = {0: 400, 1: 403, 2: 404, 3: 422}


async def _publish_rejected_and_malformed(
    bootstrap: str, topics: TopicNames, organization: str
) -> tuple[list[LeadQualified], bytes, uuid.UUID]:
    """Five qualified leads (GHL rejects the first four), an undecodable message on an intake
    topic and a valid envelope with a broken payload on a lane: the events, the broken body and
    its event id."""
    events = [qualified_event(organization, n, hot=n == 0) for n in range(5)]  # lead 4 goes through
    await publish_qualified(bootstrap, topics, events)
    org_header = {"organization-id": organization, "event-type": "lead.qualified"}
    await produce(bootstrap, topics(LEAD_QUALIFIED), b"{not json", key="x", headers=org_header)
    broken_id = uuid.uuid4()
    broken = {
        "event_id": str(broken_id),
        "event_type": "lead.qualified",
        "schema_version": 1,
        "organization_id": organization,
        "correlation_id": "req-broken",
        "payload": {"lead": {}},
    }
    await produce(bootstrap, topics(CRM_LANE_STANDARD), json.dumps(broken).encode(), headers=org_header)
    return events, json.dumps(broken).encode(), broken_id


async def _dead_letters_are_stored_and_published_once(
    bootstrap: str,
    topics: TopicNames,
    pool: asyncpg.Pool,
    organization: str,
    sandbox: Sandbox,
    events: list[LeadQualified],
    broken: bytes,
    broken_id: uuid.UUID,
) -> dict[uuid.UUID, asyncpg.Record]:
    """Each rejected event and each malformed message is one stored and one published dead
    letter; none went through the delay topics. The stored rows by event id."""

    async def dead_letters() -> list[asyncpg.Record] | None:
        rows = await pool.fetch(
            "SELECT * FROM crm_dead_letters WHERE organization_id = $1 ORDER BY id", organization
        )
        return rows if len(rows) >= 6 else None

    rows = await eventually(dead_letters, what="4 rejected and 2 invalid dead letters")
    by_event = {r["event_id"]: r for r in rows}
    for n, status in REJECTIONS.items():
        row = by_event[events[n].event_id]
        assert row["reason"] == "ghl_rejected" and row["attempts"] == 1
        assert f"upsert_contact: {status}" in row["detail"], row["detail"]
    invalid = [r for r in rows if r["reason"] == "invalid_message"]
    assert len(invalid) == 2
    assert broken_id in {r["event_id"] for r in invalid}
    assert {bytes(r["body"]) for r in invalid} == {b"{not json", broken}

    def rejected(got: list[KafkaRecord]) -> dict[str, str]:
        found = [r.headers for r in got if r.headers["dlq-reason"].startswith("ghl_rejected")]
        return {h["event-id"]: h["dlq-reason"] for h in found}

    def invalid_bodies(got: list[KafkaRecord]) -> set[bytes]:
        return {r.value for r in got if r.headers["dlq-reason"].startswith("invalid message")}

    bodies = {b"{not json", broken}
    dead = await read_topic(
        bootstrap,
        topics(DEAD_LETTER),
        until=lambda got: len(rejected(got)) == 4 and invalid_bodies(got) >= bodies,
    )
    assert set(rejected(dead)) == {str(events[n].event_id) for n in REJECTIONS}
    assert invalid_bodies(dead) >= bodies  # the webhook engine also dead-letters the garbage
    # Permanent: none went through the delay topics, each rejected call was made once.
    assert await topic_records(bootstrap, topics(CRM_RETRY_TOPICS[0])) == []
    assert (await sandbox.stats())["injected_rejected"] == 4
    assert [c["email"] for c in await sandbox.contacts(f"loc-{organization}")] == ["lead4@example.com"]
    return by_event


async def _dlq_reasons(crm: Settings, home: Path, organization: str) -> list[str]:
    """The reasons of the organisation's open dead letters, as `jorge dlq list --json` shows them."""
    listed = json.loads(
        await asyncio.to_thread(jorge, crm, home, "dlq", "list", "--json", "--organization", organization)
    )
    return sorted(row["reason"] for row in listed)


async def _fixed_ones_replay_and_invalid_ones_are_refused(
    crm: Settings, home: Path, organization: str, first_dead_letter: str
) -> None:
    """One by id, then the rest by reason; invalid messages cannot be replayed."""
    assert "replayed 1" in await asyncio.to_thread(jorge, crm, home, "dlq", "replay", first_dead_letter)
    out = await asyncio.to_thread(
        jorge, crm, home, "dlq", "replay", "--reason", "ghl_rejected", "--organization", organization
    )
    assert "replayed 3" in out
    refused = await asyncio.to_thread(
        run_jorge, crm, home, "dlq", "replay", "--reason", "invalid_message", "--organization", organization
    )
    assert refused.returncode == 1 and refused.stderr.count("not replayed") == 2, refused


async def _every_lead_synced_once(sandbox: Sandbox, location: str) -> None:
    async def all_noted() -> bool:
        contacts = await sandbox.contacts(location)
        return len(contacts) == 5 and all(c["notes"] for c in contacts)

    await eventually(all_noted, what="5 contacts with their notes")
    await asyncio.sleep(1.0)  # room for a duplicate to show up
    contacts = await sandbox.contacts(location)
    assert sorted(c["email"] for c in contacts) == [f"lead{n}@example.com" for n in range(5)]
    assert all(len(c["notes"]) == 1 for c in contacts)


async def test_rejected_and_invalid_messages_are_dead_letters_and_only_fixed_ones_replay_once(
    settings: Settings,
    topics: TopicNames,
    pool: asyncpg.Pool,
    organization: str,
    sandbox: Sandbox,
    tmp_path: Path,
) -> None:
    bootstrap = settings.kafka_bootstrap_servers
    assert bootstrap
    location = f"loc-{organization}"
    crm = settings.model_copy(
        update={
            "ghl_base_url": sandbox.url,
            "ghl_token": SecretStr(f"token-{organization}"),
            "ghl_organization": organization,
            "ghl_location_id": location,
            "crm_retry_delays_seconds": "0.2,0.5,1,1,1",
        }
    )
    # 400, 403, 404, and a 422 that does NOT create (unlike the 422-that-created fault).
    await sandbox.faults(reject={f"lead{n}@example.com": status for n, status in REJECTIONS.items()})
    worker = ServiceProcess.worker("crm_sync", crm, tmp_path)
    await worker.start()
    try:
        events, broken, broken_id = await _publish_rejected_and_malformed(bootstrap, topics, organization)
        by_event = await _dead_letters_are_stored_and_published_once(
            bootstrap, topics, pool, organization, sandbox, events, broken, broken_id
        )
        assert (
            await _dlq_reasons(crm, tmp_path, organization) == ["ghl_rejected"] * 4 + ["invalid_message"] * 2
        )

        await sandbox.faults()  # the data or configuration is fixed
        first = str(by_event[events[0].event_id]["id"])
        await _fixed_ones_replay_and_invalid_ones_are_refused(crm, tmp_path, organization, first)
        await _every_lead_synced_once(sandbox, location)
        assert await _dlq_reasons(crm, tmp_path, organization) == ["invalid_message"] * 2
    finally:
        worker.stop()
