"""`jorge dlq` on the dead letters of the qualifier, matcher and seller analyzer (crm_sync's are
in test_dlq_cli.py): listed by consumer, replayed to the topic they came from with their key."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest
from faststream.asgi import AsgiFastStream

from jorge_runtime.settings import Settings
from schemas.topics import (
    BUYER_MATCH_REQUESTED,
    LEAD_QUALIFICATION_REQUESTED,
    SELLER_ANALYSIS_REQUESTED,
    TopicNames,
    TopicSpec,
)
from services.matcher.app import create_app as create_matcher
from services.qualifier.app import create_app as create_qualifier
from services.seller_analyzer.app import create_app as create_seller_analyzer
from tests.support.leads import FlakyEngine, send_lead, wait_completed
from tests.support.services import produce, read_topic, run_jorge
from tests.support.waiting import eventually


def jorge(settings: Settings, home: Path, *args: str) -> str:
    done = run_jorge(settings, home, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def open_rows(pool: asyncpg.Pool, consumer: str, topic: str, count: int) -> list[asyncpg.Record]:
    query = """SELECT * FROM crm_dead_letters WHERE consumer = $1 AND origin_topic = $2
                  AND replayed_at IS NULL ORDER BY id"""

    async def enough() -> list[asyncpg.Record] | None:
        rows = await pool.fetch(query, consumer, topic)
        return rows if len(rows) >= count else None

    return await eventually(enough, 60, lambda _: f"{count} open dead letter(s) of {consumer} expected")


async def test_a_qualifier_dead_letter_is_replayed_once_the_bug_is_fixed(
    settings: Settings, topics: TopicNames, pool: asyncpg.Pool, organization: str, tmp_path: Path
) -> None:
    strict = settings.model_copy(update={"consumer_max_attempts": 2, "consumer_retry_backoff_seconds": 0.01})
    engine = FlakyEngine("lead-replay", failures=2, error=lambda: RuntimeError("engine bug"))
    app = create_qualifier(strict, engine=engine)
    await app.start()
    try:
        await send_lead(strict, organization, "lead-replay")
        [row] = await open_rows(pool, "qualifier", topics(LEAD_QUALIFICATION_REQUESTED), 1)
        # Scoped to this test's organisation: other tests on this database dead-letter too.
        only_ours = ("--organization", organization)
        listed = json.loads(
            jorge(strict, tmp_path, "dlq", "list", "--consumer", "qualifier", *only_ours, "--json")
        )
        assert [(d["id"], d["consumer"], d["reason"]) for d in listed] == [
            (row["id"], "qualifier", "attempts_exhausted")
        ]
        assert "nothing to replay" in jorge(
            strict, tmp_path, "dlq", "replay", "--consumer", "matcher", *only_ours
        )
        assert "replayed 1" in jorge(strict, tmp_path, "dlq", "replay", str(row["id"]))
        await wait_completed(pool, organization, "lead-replay")  # the "fixed" engine now qualifies it
    finally:
        await app.stop()
    assert engine.calls == 3
    assert "nothing to replay" in jorge(strict, tmp_path, "dlq", "replay", str(row["id"]))


@pytest.mark.parametrize(
    ("consumer", "spec", "create_app"),
    [
        ("matcher", BUYER_MATCH_REQUESTED, create_matcher),
        ("seller_analyzer", SELLER_ANALYSIS_REQUESTED, create_seller_analyzer),
    ],
)
async def test_an_invalid_message_is_listed_and_replays_to_its_topic_with_its_key(
    settings: Settings,
    topics: TopicNames,
    pool: asyncpg.Pool,
    tmp_path: Path,
    consumer: str,
    spec: TopicSpec,
    create_app: Callable[[Settings], AsgiFastStream],
) -> None:
    assert settings.kafka_bootstrap_servers
    app = create_app(settings)
    await app.start()
    try:
        body = json.dumps({"event_type": spec.name, "payload": {}}).encode()
        await produce(settings.kafka_bootstrap_servers, topics(spec), body, key="key-7")
        [first] = await open_rows(pool, consumer, topics(spec), 1)
        assert (first["reason"], first["message_key"], bytes(first["body"])) == (
            "invalid_message",
            "key-7",
            body,
        )
        assert "replayed 1" in jorge(settings, tmp_path, "dlq", "replay", str(first["id"]))
        # Still invalid: its consumer reads it again from its topic and dead-letters it anew.
        [second] = await open_rows(pool, consumer, topics(spec), 1)
        assert second["id"] != first["id"]
    finally:
        await app.stop()
    records = await read_topic(
        settings.kafka_bootstrap_servers, topics(spec), until=lambda got: len(got) >= 2, timeout=10
    )
    assert [(r.key, r.value) for r in records] == [("key-7", body), ("key-7", body)]
