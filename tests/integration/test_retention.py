"""The purge against the real PostgreSQL: old rows go, recent, pending and owed ones stay, in
batches; `jorge purge` as a command; the periodic run's lock and interval."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from pydantic import SecretStr

from jorge_runtime.retention.policy import TABLES, RetentionPolicy
from jorge_runtime.retention.purge import purge
from jorge_runtime.retention.task import PURGE_LOCK_ID, PeriodicPurge
from jorge_runtime.settings import Settings
from jorge_runtime.webhook_secrets import seal, webhook_secret_cipher
from schemas.webhooks import generate_secret
from tests.support.credentials import CREDENTIALS_KEY
from tests.support.services import jorge

OLD = 40  # days: past every default limit
RECENT = 1


@dataclass
class Seeded:
    """Ids of what one call to seed() wrote, by what should become of it."""

    gone: dict[str, list[object]] = field(default_factory=dict)
    kept: dict[str, list[object]] = field(default_factory=dict)


def _ago(days: float) -> str:
    return f"now() - make_interval(days => {days})"


async def seed(pool: asyncpg.Pool, organization: str, days: float) -> Seeded:
    """One of everything the purge looks at, ``days`` old; what goes assumes days > limits."""
    cipher = webhook_secret_cipher(SecretStr(CREDENTIALS_KEY))
    assert cipher is not None
    ago = _ago(days)
    consumer = f"retention-{uuid.uuid4().hex[:6]}"
    done_event, owing_event = uuid.uuid4(), uuid.uuid4()
    published, unpublished = uuid.uuid4(), uuid.uuid4()
    async with pool.acquire() as conn:
        await conn.execute(
            f"""INSERT INTO processed_events (consumer, event_id, processed_at)
                VALUES ($1, $2, {ago}), ($1, $3, {ago})""",
            consumer, done_event, owing_event,
        )  # fmt: skip
        await conn.execute(
            f"""INSERT INTO outbox (message_id, consumer, source_event_id, topic, headers, body,
                                    created_at, published_at)
                VALUES ($1, $2, $3, 't', '{{}}', '', {ago}, {ago}),
                       ($4, $2, $5, 't', '{{}}', '', {ago}, NULL)""",
            published, consumer, done_event, unpublished, owing_event,
        )  # fmt: skip
        endpoint = f"we_{uuid.uuid4().hex[:12]}"
        await conn.execute(
            """INSERT INTO webhook_endpoints (id, organization_id, url, events, secret_encrypted)
               VALUES ($1, $2, $3, $4, $5)""",
            endpoint, organization, "https://example.com/hook", ["lead.qualified"],
            seal(cipher, endpoint, generate_secret()),
        )  # fmt: skip
        messages = {kind: f"msg_{kind}_{uuid.uuid4().hex[:10]}" for kind in ("done", "pending", "flight")}
        for message in messages.values():
            await conn.execute(
                f"""INSERT INTO webhook_messages (id, organization_id, event_type, payload, created_at)
                    VALUES ($1, $2, 'lead.qualified', '{{}}', {ago})""",
                message, organization,
            )  # fmt: skip
        deliveries = {kind: f"wd_{kind}_{uuid.uuid4().hex[:10]}" for kind in messages}
        for kind, status, lease in (
            ("done", "succeeded", "NULL"),
            ("pending", "pending", "NULL"),
            ("flight", "failed", "now() + interval '1 minute'"),  # an attempt still in flight
        ):
            await conn.execute(
                f"""INSERT INTO webhook_deliveries (id, endpoint_id, message_id, status, attempts, created_at,
                                                    updated_at, lease_expires_at)
                    VALUES ($1, $2, $3, $4, 2, {ago}, {ago}, {lease})""",
                deliveries[kind], endpoint, messages[kind], status,
            )  # fmt: skip
            for number in (1, 2):
                await conn.execute(
                    f"""INSERT INTO webhook_attempts (id, delivery_id, attempt_number, trigger, status, url,
                                                      started_at)
                        VALUES ($1, $2, $3, 'scheduled', 'failed', 'https://example.com/hook', {ago})""",
                    f"wa_{uuid.uuid4().hex[:12]}", deliveries[kind], number,
                )  # fmt: skip
        synced, open_failure, replayed_failure, discarded_failure = (uuid.uuid4() for _ in range(4))
        for event in (synced, open_failure, replayed_failure, discarded_failure):
            await conn.execute(
                f"""INSERT INTO crm_sync_steps (event_id, step, status, updated_at)
                    VALUES ($1, 'tags', 'done', {ago}), ($1, 'note', 'done', {ago})""",
                event,
            )
        letters = await conn.fetch(
            f"""INSERT INTO crm_dead_letters (organization_id, event_id, lane, reason, attempts, headers,
                                              body, created_at, replayed_at, discarded_at, discard_note)
                VALUES ($1, $2, 'standard', 'ghl_rejected', 1, '{{}}', '', {ago}, NULL, NULL, NULL),
                       ($1, $3, 'standard', 'ghl_rejected', 1, '{{}}', '', {ago}, {ago}, NULL, NULL),
                       ($1, $4, 'standard', 'ghl_rejected', 1, '{{}}', '', {ago}, NULL, {ago}, 'test org')
                RETURNING id""",
            organization, open_failure, replayed_failure, discarded_failure,
        )  # fmt: skip
        receipt = f"wh-{uuid.uuid4().hex}"
        await conn.execute(
            f"INSERT INTO ghl_webhook_receipts (webhook_id, received_at) VALUES ($1, {ago})", receipt
        )
    return Seeded(
        gone={
            "outbox": [published],
            "processed_events": [(consumer, done_event)],
            "webhook_deliveries": [deliveries["done"]],
            "webhook_messages": [messages["done"]],
            "crm_sync_steps": [(synced, "tags"), (synced, "note"), (replayed_failure, "tags"),
                               (replayed_failure, "note"), (discarded_failure, "tags"),
                               (discarded_failure, "note")],
            "crm_dead_letters": [letters[1]["id"], letters[2]["id"]],
            "ghl_webhook_receipts": [receipt],
        },
        kept={
            "outbox": [unpublished],
            "processed_events": [(consumer, owing_event)],
            "webhook_deliveries": [deliveries["pending"], deliveries["flight"]],
            "webhook_messages": [messages["pending"], messages["flight"]],
            "crm_sync_steps": [(open_failure, "tags"), (open_failure, "note")],
            "crm_dead_letters": [letters[0]["id"]],
            "ghl_webhook_receipts": [],
        },
    )  # fmt: skip


_EXISTS = {
    "outbox": "SELECT count(*) FROM outbox WHERE message_id = ANY($1::uuid[])",
    "webhook_deliveries": "SELECT count(*) FROM webhook_deliveries WHERE id = ANY($1::text[])",
    "webhook_messages": "SELECT count(*) FROM webhook_messages WHERE id = ANY($1::text[])",
    "crm_dead_letters": "SELECT count(*) FROM crm_dead_letters WHERE id = ANY($1::bigint[])",
    "ghl_webhook_receipts": "SELECT count(*) FROM ghl_webhook_receipts WHERE webhook_id = ANY($1::text[])",
}


async def present(pool: asyncpg.Pool, rows: dict[str, list[object]]) -> dict[str, int]:
    counts = {}
    for table, ids in rows.items():
        if table in ("processed_events", "crm_sync_steps"):
            column = "consumer, event_id" if table == "processed_events" else "event_id, step"
            found = 0
            for key in ids:
                found += await pool.fetchval(
                    f"SELECT count(*) FROM {table} WHERE ({column}) = ($1, $2)",
                    *key,  # type: ignore[misc]
                )
            counts[table] = found
        else:
            counts[table] = await pool.fetchval(_EXISTS[table], ids)
    return counts


EXPECTED = {
    "outbox": 1,
    "processed_events": 1,
    "webhook_attempts": 2,
    "webhook_deliveries": 1,
    "webhook_messages": 1,
    "crm_dead_letters": 2,
    "crm_sync_steps": 6,
    "ghl_webhook_receipts": 1,
}


async def test_old_rows_go_while_recent_pending_in_flight_and_owed_ones_stay(
    pool: asyncpg.Pool, organization: str
) -> None:
    old = await seed(pool, organization, OLD)
    recent = await seed(pool, organization, RECENT)
    policy = RetentionPolicy()

    assert await purge(pool, policy, dry_run=True) == EXPECTED
    assert await present(pool, old.gone) == {t: len(ids) for t, ids in old.gone.items()}  # dry: untouched

    assert await purge(pool, policy) == EXPECTED
    assert await present(pool, old.gone) == dict.fromkeys(old.gone, 0)
    assert await present(pool, old.kept) == {t: len(ids) for t, ids in old.kept.items()}
    everything_recent = {t: recent.gone[t] + recent.kept[t] for t in recent.gone}
    assert await present(pool, everything_recent) == {t: len(ids) for t, ids in everything_recent.items()}
    kept_attempts = await pool.fetchval(
        "SELECT count(*) FROM webhook_attempts WHERE delivery_id = ANY($1::text[])",
        old.kept["webhook_deliveries"],
    )
    assert kept_attempts == 4
    assert await purge(pool, policy) == dict.fromkeys(TABLES, 0)


async def test_a_delivery_made_pending_again_is_kept_and_its_message_with_it(
    pool: asyncpg.Pool, organization: str
) -> None:
    old = await seed(pool, organization, OLD)
    done = old.gone["webhook_deliveries"][0]
    await pool.execute("UPDATE webhook_deliveries SET status = 'pending' WHERE id = $1", done)  # a redelivery

    counts = await purge(pool, RetentionPolicy())

    assert counts["webhook_deliveries"] == counts["webhook_messages"] == 0
    assert await pool.fetchval("SELECT count(*) FROM webhook_attempts WHERE delivery_id = $1", done) == 2


async def test_large_backlogs_are_deleted_in_bounded_batches(pool: asyncpg.Pool) -> None:
    consumer = f"retention-bulk-{uuid.uuid4().hex[:6]}"
    await pool.execute(
        f"""INSERT INTO processed_events (consumer, event_id, processed_at)
            SELECT $1, gen_random_uuid(), {_ago(OLD)} FROM generate_series(1, 12345)""",
        consumer,
    )
    assert (await purge(pool, RetentionPolicy()))["processed_events"] == 12345  # 5000 + 5000 + 2345

    await pool.execute(
        f"""INSERT INTO crm_sync_steps (event_id, step, status, updated_at)
            SELECT gen_random_uuid(), 'tags', 'done', {_ago(OLD)} FROM generate_series(1, 250)"""
    )
    counts = await purge(pool, RetentionPolicy(batch_size=100))  # 100 + 100 + 50
    assert counts["crm_sync_steps"] == 250
    assert await pool.fetchval("SELECT count(*) FROM processed_events WHERE consumer = $1", consumer) == 0


async def test_jorge_purge_prints_counts_and_dry_run_deletes_nothing(
    settings: Settings, pool: asyncpg.Pool, organization: str, tmp_path: Path
) -> None:
    old = await seed(pool, organization, OLD)

    dry = json.loads(await asyncio.to_thread(jorge, settings, tmp_path, "purge", "--dry-run", "--json"))
    assert dry == {"dry_run": True, "deleted": EXPECTED}
    assert await present(pool, old.gone) == {t: len(ids) for t, ids in old.gone.items()}

    printed = await asyncio.to_thread(jorge, settings, tmp_path, "purge")
    lines = {line.split()[0]: line.split()[-1] for line in printed.strip().splitlines()}
    assert lines == {**{t: str(n) for t, n in EXPECTED.items()}, "total": str(sum(EXPECTED.values()))}
    assert await present(pool, old.gone) == dict.fromkeys(old.gone, 0)


async def test_the_periodic_purge_runs_once_per_interval_and_only_under_the_lock(
    pool: asyncpg.Pool, organization: str
) -> None:
    await pool.execute("DELETE FROM retention_runs")
    periodic = PeriodicPurge(lambda: pool, RetentionPolicy(), interval_seconds=3600)
    await seed(pool, organization, OLD)

    async with pool.acquire() as other_replica:
        assert await other_replica.fetchval("SELECT pg_try_advisory_lock($1)", PURGE_LOCK_ID)
        assert await periodic.run_once() is None  # another replica is purging
        await other_replica.execute("SELECT pg_advisory_unlock($1)", PURGE_LOCK_ID)

    assert await periodic.run_once() == EXPECTED
    assert await pool.fetchval("SELECT deleted FROM retention_runs WHERE name = 'purge'") == EXPECTED
    assert await periodic.run_once() is None  # ran within the interval
    await pool.execute("UPDATE retention_runs SET finished_at = now() - interval '1 hour'")
    assert await periodic.run_once() == dict.fromkeys(TABLES, 0)  # the interval has passed
