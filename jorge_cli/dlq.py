"""`jorge dlq`: crm_sync's dead letters (GHL writes that failed for good): list and replay."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated

import typer
from aiokafka import AIOKafkaProducer

from jorge_cli.state import settings_for_command
from jorge_runtime.db import create_pool
from jorge_runtime.deadletter import INVALID_MESSAGE_ERRORS, describe
from jorge_runtime.kafka_security import kafka_client_options
from jorge_runtime.settings import ConfigError, Settings
from schemas.topics import CRM_RETRY_TOPICS, TopicNames
from services.crm_sync.outcomes import parse_event
from services.crm_sync.repository import DeadLetter, list_dead_letters, mark_replayed
from services.crm_sync.retry_schedule import ATTEMPT_HEADER, DUE_AT_HEADER, LANE_HEADER

dlq = typer.Typer(
    help="crm_sync's dead letters: list them, and replay them through the normal path once fixed.",
    no_args_is_help=True,
)

Reason = Annotated[str | None, typer.Option(help="Only this reason, e.g. ghl_unauthorized.")]
Organization = Annotated[str | None, typer.Option("--organization", help="Only this organisation.")]


def _settings(*names: str) -> Settings:
    try:
        settings = settings_for_command()
        settings.require(*names)
    except ConfigError as exc:
        typer.echo(f"jorge: configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    return settings


async def _fetch(settings: Settings, **filters: object) -> list[DeadLetter]:
    assert settings.database_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        return await list_dead_letters(pool, **filters)  # type: ignore[arg-type]
    finally:
        await pool.close()


@dlq.command("list")
def list_letters(
    reason: Reason = None,
    organization: Organization = None,
    include_replayed: Annotated[bool, typer.Option("--all", help="Include those already replayed.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Dead letters still to handle, oldest first: id, when, organisation, event, reason."""
    settings = _settings("database_url")
    letters = asyncio.run(
        _fetch(settings, reason=reason, organization_id=organization, include_replayed=include_replayed)
    )
    if as_json:
        rows = [
            {
                "id": d.id,
                "created_at": d.created_at.isoformat(),
                "organization_id": d.organization_id,
                "event_id": str(d.event_id) if d.event_id else None,
                "event_type": d.event_type,
                "lane": d.lane,
                "reason": d.reason,
                "detail": d.detail,
                "attempts": d.attempts,
                "replayed_at": d.replayed_at.isoformat() if d.replayed_at else None,
                "replay_count": d.replay_count,
            }
            for d in letters
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    if not letters:
        typer.echo("no dead letters")
        return
    for d in letters:
        replayed = f"  replayed {d.replayed_at:%Y-%m-%d %H:%M}" if d.replayed_at else ""
        typer.echo(
            f"{d.id:>6}  {d.created_at:%Y-%m-%d %H:%M:%S}  {d.organization_id or '-':<16} "
            f"{d.event_type or '-':<30} {d.reason:<20} attempts={d.attempts}{replayed}\n"
            f"        {d.detail[:150]}"
        )


def still_invalid(letter: DeadLetter) -> str | None:
    """Why this dead letter cannot be replayed (its body is still not an event crm_sync can
    read, checked with crm_sync's own validation), or None if it can."""
    try:
        parse_event(letter.body)
    except INVALID_MESSAGE_ERRORS as error:
        return describe(error)
    return None


async def _replay(settings: Settings, letters: list[DeadLetter]) -> int:
    assert settings.database_url and settings.kafka_bootstrap_servers
    topic = TopicNames(settings.kafka_topic_prefix)(CRM_RETRY_TOPICS[0])
    producer = AIOKafkaProducer(
        **kafka_client_options(settings),
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
    )
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    await producer.start()
    try:
        for letter in letters:
            headers = {
                **letter.headers,
                ATTEMPT_HEADER: "1",
                DUE_AT_HEADER: str(int(time.time() * 1000)),
                LANE_HEADER: letter.lane,
            }
            # Marked first, in the same transaction: a replay failing again at once can then
            # record a new dead letter; a publish failure rolls the mark back.
            async with pool.acquire() as conn, conn.transaction():
                await mark_replayed(conn, letter.id)
                await producer.send_and_wait(
                    topic,
                    letter.body,
                    key=letter.message_key.encode() if letter.message_key else None,
                    headers=[(k, v.encode()) for k, v in headers.items()],
                )
        return len(letters)
    finally:
        await producer.stop()
        await pool.close()


@dlq.command()
def replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead-letter ids (see `jorge dlq list`).")] = None,
    reason: Reason = None,
    organization: Organization = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Every dead letter not yet replayed.")] = False,
) -> None:
    """Put dead letters back through crm_sync's normal path: one or more ids, a filter, or --all.

    Fix the cause first (e.g. the organisation's GHL token for ghl_unauthorized). A body that is
    still not a valid event (invalid_message) is refused: exit code 1, the row stays open."""
    if not (ids or reason or organization or replay_all):
        typer.echo("say which: dead-letter ids, --reason, --organization, or --all", err=True)
        raise typer.Exit(2)
    settings = _settings("database_url", "kafka_bootstrap_servers")

    async def run() -> tuple[int, int, list[tuple[DeadLetter, str]]]:
        letters = await _fetch(settings, ids=ids or None, reason=reason, organization_id=organization)
        checked = [(d, still_invalid(d)) for d in letters]
        refused = [(d, why) for d, why in checked if why is not None]
        valid = [d for d, why in checked if why is None]
        return len(letters), await _replay(settings, valid) if valid else 0, refused

    found, replayed, refused = asyncio.run(run())
    if found and (replayed or not refused):
        typer.echo(f"replayed {replayed} dead letter(s)")
    elif not found:
        typer.echo("nothing to replay")
    for letter, why in refused:
        # Replaying it would only dead-letter it again: its producer must be fixed instead.
        typer.echo(
            f"not replayed: {letter.id} ({letter.reason}) is still not a valid event: {why}. "
            "Fix the producer (or upgrade crm_sync if it should accept it) and republish it.",
            err=True,
        )
    if refused:
        raise typer.Exit(1)
