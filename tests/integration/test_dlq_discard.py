"""`jorge dlq discard` against the real PostgreSQL: what it closes, what then lists, replays and
is dead-lettered again (retention of discarded rows: test_retention.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from jorge_cli.main import app
from jorge_runtime.db import create_pool, migrate
from jorge_runtime.settings import Settings
from services.crm_sync.ghl.repository import CrmRepository, mark_replayed
from tests.support.services import create_database, drop_database, jorge, run_jorge, with_database


async def dead_letter(pool: asyncpg.Pool, organization: str, event_id: uuid.UUID, reason: str) -> int | None:
    """Record a dead letter the way crm_sync does; None if the event already has an open one."""
    return await CrmRepository(pool).add_dead_letter(
        pool,
        organization_id=organization,
        event_id=event_id,
        event_type="lead.qualified",
        message_key="lead-1",
        lane="standard",
        reason=reason,
        detail=f"{reason}: test",
        attempts=1,
        headers={"organization-id": organization},
        body=b"{}",
    )


async def test_discarded_letters_leave_the_list_never_replay_and_can_be_dead_lettered_again(
    settings: Settings, pool: asyncpg.Pool, organization: str, tmp_path: Path
) -> None:
    events = [uuid.uuid4() for _ in range(4)]
    reasons = ["ghl_rejected", "ghl_unauthorized", "ghl_unauthorized", "ghl_rejected"]
    recorded = [await dead_letter(pool, organization, e, r) for e, r in zip(events, reasons, strict=True)]
    ids = [i for i in recorded if i is not None]
    assert len(ids) == 4

    by_id = await asyncio.to_thread(
        jorge, settings, tmp_path, "dlq", "discard", str(ids[0]), "--note", "lead deleted in GHL"
    )
    assert by_id.strip() == "discarded 1 dead letter(s)"
    by_filter = await asyncio.to_thread(
        jorge, settings, tmp_path, "dlq", "discard", "--reason", "ghl_unauthorized",
        "--organization", organization, "--note", "test organisation",
    )  # fmt: skip
    assert by_filter.strip() == "discarded 2 dead letter(s)"

    def listing(*extra: str) -> str:
        return jorge(settings, tmp_path, "dlq", "list", "--organization", organization, *extra)

    everything, text = await asyncio.gather(
        asyncio.to_thread(listing, "--json", "--all"), asyncio.to_thread(listing, "--all")
    )
    rows = {row["id"]: row for row in json.loads(everything)}
    assert [rows[i]["status"] for i in ids] == ["discarded", "discarded", "discarded", "open"]
    assert [rows[i]["discard_note"] for i in ids] == [
        "lead deleted in GHL", "test organisation", "test organisation", None,
    ]  # fmt: skip
    assert all(rows[i]["discarded_at"] for i in ids[:3]) and rows[ids[3]]["discarded_at"] is None
    assert f"{ids[0]:>6}  discarded" in text and f"{ids[3]:>6}  open" in text, text
    assert "note: lead deleted in GHL" in text, text

    replayed, again = await asyncio.gather(
        asyncio.to_thread(jorge, settings, tmp_path, "dlq", "replay", str(ids[0])),
        asyncio.to_thread(jorge, settings, tmp_path, "dlq", "discard", str(ids[0]), "--note", "twice"),
    )
    assert replayed.strip() == "nothing to replay"
    assert again.strip() == "nothing to discard"
    # A replay that listed it before the discard does not publish it either.
    assert not await mark_replayed(pool, ids[0])
    row = await pool.fetchrow("SELECT * FROM crm_dead_letters WHERE id = $1", ids[0])
    assert row is not None and row["replayed_at"] is None and row["replay_count"] == 0
    assert row["discard_note"] == "lead deleted in GHL"

    # The same event sent again and failing again is a new open dead letter; an open one is not doubled.
    assert await dead_letter(pool, organization, events[3], "ghl_rejected") is None
    new = await dead_letter(pool, organization, events[0], "ghl_rejected")
    assert new is not None and new != ids[0]
    listed = json.loads(await asyncio.to_thread(listing, "--json"))  # open ones only
    assert [(row["id"], row["status"]) for row in listed] == [(ids[3], "open"), (new, "open")]


@pytest.fixture
async def own_database(settings: Settings) -> AsyncIterator[Settings]:
    """Settings on an empty database of this test's own (`--all` acts on every organisation)."""
    assert settings.database_url
    name = f"jorge_dlq_{uuid.uuid4().hex[:10]}"
    await create_database(settings.database_url, name)
    url = with_database(settings.database_url, name)
    try:
        await migrate(url)
        yield settings.model_copy(update={"database_url": url})
    finally:
        await drop_database(settings.database_url, name)


async def test_discarding_every_open_letter_asks_first_unless_yes(
    own_database: Settings, tmp_path: Path
) -> None:
    assert own_database.database_url
    pool = await create_pool(own_database.database_url, min_size=1, max_size=2)
    try:
        for organization in ("acme", "test-org"):
            await dead_letter(pool, organization, uuid.uuid4(), "retries_exhausted")

        refused = await asyncio.to_thread(
            run_jorge, own_database, tmp_path, "dlq", "discard", "--all", "--note", "cleanup", stdin="n\n"
        )
        assert refused.returncode == 1 and "discard all 2 open dead letter(s)?" in refused.stdout, refused
        assert await pool.fetchval("SELECT count(*) FROM crm_dead_letters WHERE discarded_at IS NULL") == 2

        done = await asyncio.to_thread(
            jorge, own_database, tmp_path, "dlq", "discard", "--all", "--yes", "--note", "cleanup"
        )
        assert done.strip() == "discarded 2 dead letter(s)"
        assert await pool.fetchval("SELECT count(*) FROM crm_dead_letters WHERE discarded_at IS NULL") == 0
    finally:
        await pool.close()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["7"], "Missing option '--note'"),
        (["--note", "why"], "say which"),
        (["7", "--note", "  "], "--note must say why"),
    ],
)
def test_discard_needs_a_selection_and_a_note(args: list[str], error: str) -> None:
    result = CliRunner().invoke(app, ["dlq", "discard", *args])
    assert result.exit_code == 2
    assert error in result.output
