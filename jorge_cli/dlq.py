"""`jorge dlq`: every consumer's dead letters (invalid or poison messages, GHL writes that failed
for good): list, replay and discard."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Annotated

import typer
from aiokafka import AIOKafkaProducer

from jorge_cli.state import settings_for_command
from jorge_runtime.db import create_pool
from jorge_runtime.kafka.dead_letters import (
    DeadLetter,
    discard_dead_letters,
    list_dead_letters,
    mark_replayed,
)
from jorge_runtime.kafka.error_policy import INVALID_MESSAGE_ERRORS, describe
from jorge_runtime.kafka.security import kafka_client_options
from jorge_runtime.settings import ConfigError, Settings
from schemas.topics import CRM_RETRY_TOPICS, TopicNames
from services.crm_sync.ghl.events import parse_event
from services.crm_sync.ghl.remedies import remedy
from services.crm_sync.ghl.retry_schedule import ATTEMPT_HEADER, DUE_AT_HEADER, LANE_HEADER

dlq = typer.Typer(
    help=(
        "Dead letters of every consumer (qualifier, matcher, seller_analyzer, crm_sync): list "
        "them, replay them through the normal path once fixed, or discard those never to be replayed."
    ),
    no_args_is_help=True,
)

Reason = Annotated[str | None, typer.Option(help="Only this reason, e.g. ghl_unauthorized.")]
Organization = Annotated[str | None, typer.Option("--organization", help="Only this organisation.")]
Consumer = Annotated[
    str | None, typer.Option("--consumer", help="Only this consumer's, e.g. qualifier or crm_sync.")
]
Ids = Annotated[list[int] | None, typer.Argument(help="Dead-letter ids (see `jorge dlq list`).")]


@dataclass(frozen=True, slots=True)
class Selection:
    """Which dead letters a command reads: every given filter must match."""

    ids: list[int] | None = None
    reason: str | None = None
    organization_id: str | None = None
    consumer: str | None = None
    include_closed: bool = False


def _chosen(
    ids: list[int] | None,
    reason: str | None,
    organization: str | None,
    consumer: str | None,
    everything: bool,
) -> Selection:
    """The open dead letters `replay` and `discard` act on: ids, --reason, --organization and/or
    --consumer, or --all; exit code 2 when none is given (never everything by default)."""
    if not (ids or reason or organization or consumer or everything):
        typer.echo("say which: dead-letter ids, --reason, --organization, --consumer, or --all", err=True)
        raise typer.Exit(2)
    return Selection(ids=ids or None, reason=reason, organization_id=organization, consumer=consumer)


def _settings(*names: str) -> Settings:
    try:
        settings = settings_for_command()
        settings.require(*names)
    except ConfigError as exc:
        typer.echo(f"jorge: configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    return settings


async def _fetch(settings: Settings, selection: Selection) -> list[DeadLetter]:
    assert settings.database_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        return await list_dead_letters(
            pool,
            ids=selection.ids,
            reason=selection.reason,
            organization_id=selection.organization_id,
            consumer=selection.consumer,
            include_closed=selection.include_closed,
        )
    finally:
        await pool.close()


@dlq.command("list")
def list_letters(
    reason: Reason = None,
    organization: Organization = None,
    consumer: Consumer = None,
    include_closed: Annotated[
        bool, typer.Option("--all", help="Include those already replayed or discarded.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Dead letters still to handle, oldest first: id, status, when, consumer, organisation, event,
    reason."""
    settings = _settings("database_url")
    selection = Selection(
        reason=reason, organization_id=organization, consumer=consumer, include_closed=include_closed
    )
    letters = asyncio.run(_fetch(settings, selection))
    if as_json:
        rows = [
            {
                "id": d.id,
                "status": d.status,
                "consumer": d.consumer,
                "origin_topic": d.origin_topic,
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
                "discarded_at": d.discarded_at.isoformat() if d.discarded_at else None,
                "discard_note": d.discard_note,
                "remedy": remedy(d.reason),
            }
            for d in letters
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    if not letters:
        typer.echo("no dead letters")
        return
    for d in letters:
        closed = d.discarded_at or d.replayed_at
        when = f"  {d.status} {closed:%Y-%m-%d %H:%M}" if closed else ""
        note = f"\n        note: {d.discard_note[:150]}" if d.discard_note else ""
        note += f"\n        do: {remedy(d.reason)}" if remedy(d.reason) and d.status == "open" else ""
        typer.echo(
            f"{d.id:>6}  {d.status:<9}  {d.created_at:%Y-%m-%d %H:%M:%S}  {d.consumer:<15} "
            f"{d.organization_id or '-':<16} "
            f"{d.event_type or '-':<30} {d.reason:<20} attempts={d.attempts}{when}\n"
            f"        {d.detail[:150]}{note}"
        )


def still_invalid(letter: DeadLetter) -> str | None:
    """Why this dead letter cannot be replayed, or None if it can: a crm_sync lane's body must
    still be an event crm_sync reads (its own validation); any other body must be a JSON object
    (its consumer validates the rest, and dead-letters it again if it is still wrong)."""
    try:
        if letter.lane is not None:
            parse_event(letter.body)
        elif not isinstance(json.loads(letter.body), dict):
            return "not a JSON object"
    except INVALID_MESSAGE_ERRORS as error:
        return describe(error)
    return None


def destination(letter: DeadLetter, topics: TopicNames, now_ms: int) -> tuple[str, dict[str, str]]:
    """Where a replay goes, with which headers: a crm_sync lane's letter to the first retry topic
    (due now, in its lane); any other to the topic it came from, with its original headers."""
    if letter.lane is not None:
        retry = {ATTEMPT_HEADER: "1", DUE_AT_HEADER: str(now_ms), LANE_HEADER: letter.lane}
        return topics(CRM_RETRY_TOPICS[0]), {**letter.headers, **retry}
    origin = letter.origin_topic or letter.headers.get("dlq-origin-topic")
    if not origin:
        raise ValueError(f"dead letter {letter.id} names no origin topic")
    return origin, dict(letter.headers)


async def _replay(settings: Settings, letters: list[DeadLetter]) -> int:
    """Publish each letter still open where it goes (see destination); how many were published."""
    assert settings.database_url and settings.kafka_bootstrap_servers
    topics = TopicNames(settings.kafka_topic_prefix)
    producer = AIOKafkaProducer(
        **kafka_client_options(settings),
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
    )
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    await producer.start()
    replayed = 0
    try:
        for letter in letters:
            topic, headers = destination(letter, topics, int(time.time() * 1000))
            # Marked first, in the same transaction: a replay failing again at once can then
            # record a new dead letter; a publish failure rolls the mark back.
            async with pool.acquire() as conn, conn.transaction():
                if not await mark_replayed(conn, letter.id):
                    continue  # replayed or discarded by someone else since it was listed
                await producer.send_and_wait(
                    topic,
                    letter.body,
                    key=letter.message_key.encode() if letter.message_key else None,
                    headers=[(k, v.encode()) for k, v in headers.items()],
                )
            replayed += 1
        return replayed
    finally:
        await producer.stop()
        await pool.close()


@dlq.command()
def replay(
    ids: Ids = None,
    reason: Reason = None,
    organization: Organization = None,
    consumer: Consumer = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Every open dead letter.")] = False,
) -> None:
    """Put dead letters back through the normal path: one or more ids, a filter, or --all.

    crm_sync's lane letters go to its first retry topic; every other letter to the topic it came
    from, with its key and headers (every consumer of that topic sees it again and skips what it
    already did). Fix the cause first (e.g. the organisation's GHL token for ghl_unauthorized, a
    worker's bug). A body that is still not a valid event is refused: exit code 1, the row stays
    open."""
    selection = _chosen(ids, reason, organization, consumer, replay_all)
    settings = _settings("database_url", "kafka_bootstrap_servers")

    async def run() -> tuple[int, int, list[tuple[DeadLetter, str]]]:
        letters = await _fetch(settings, selection)
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


async def _discard(settings: Settings, ids: list[int], note: str) -> int:
    assert settings.database_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        return len(await discard_dead_letters(pool, ids, note))
    finally:
        await pool.close()


@dlq.command()
def discard(
    note: Annotated[
        str, typer.Option("--note", help="Why they must never be replayed; stored with each row.")
    ],
    ids: Ids = None,
    reason: Reason = None,
    organization: Organization = None,
    consumer: Consumer = None,
    discard_all: Annotated[bool, typer.Option("--all", help="Every open dead letter.")] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before discarding every open dead letter.")
    ] = False,
) -> None:
    """Close dead letters that must never be replayed (a lead the sales team deleted, a test
    organisation): one or more ids, a filter, or --all, with a --note saying why.

    They leave `jorge dlq list` (`--all` still shows them), can no longer be replayed, and
    retention deletes them RETENTION_DEAD_LETTERS_DAYS later. If the same event is sent again
    and fails, it becomes a new dead letter. --all without a filter asks first, unless --yes."""
    selection = _chosen(ids, reason, organization, consumer, discard_all)
    why = note.strip()
    if not why:
        typer.echo("--note must say why they are discarded", err=True)
        raise typer.Exit(2)
    settings = _settings("database_url")
    letters = asyncio.run(_fetch(settings, selection))
    if not letters:
        typer.echo("nothing to discard")
        return
    everything = not (selection.ids or selection.reason or selection.organization_id or selection.consumer)
    if everything and not yes:
        typer.confirm(f"discard all {len(letters)} open dead letter(s)?", abort=True)
    discarded = asyncio.run(_discard(settings, [d.id for d in letters], why))
    typer.echo(f"discarded {discarded} dead letter(s)")
