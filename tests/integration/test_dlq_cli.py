"""`jorge dlq list` and `jorge dlq replay` against crm_sync's real dead letters."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from jorge_runtime.settings import Settings
from schemas.topics import DEAD_LETTER, TopicNames
from services.crm_sync.repository import CrmRepository
from tests.integration.test_crm_sync_worker import eventually
from tests.support.ghl import Sandbox, publish_qualified, qualified_event
from tests.support.services import REPO, ServiceProcess, read_topic, settings_env


@pytest.fixture
async def sandbox(log_dir: Path) -> AsyncIterator[Sandbox]:
    sandbox = await Sandbox.start(log_dir / "ghl.log", burst=1000, interval_ms=1000)
    yield sandbox
    sandbox.stop()


def jorge(settings: Settings, home: Path, *args: str) -> str:
    env = settings_env(settings) | {"JORGE_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-m", "jorge_cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_unauthorized_writes_are_listed_and_replayed_once_the_token_is_fixed(
    settings: Settings,
    topics: TopicNames,
    pool: asyncpg.Pool,
    organization: str,
    sandbox: Sandbox,
    tmp_path: Path,
) -> None:
    assert settings.kafka_bootstrap_servers
    crm = settings.model_copy(
        update={"ghl_base_url": sandbox.url, "crm_retry_delays_seconds": "0.2,0.5,1,1,1"}
    )
    repository = CrmRepository(pool)
    await repository.save_credentials(organization, f"loc-{organization}", SecretStr("old-token"))
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

        await repository.save_credentials(organization, f"loc-{organization}", SecretStr("new-token"))
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
