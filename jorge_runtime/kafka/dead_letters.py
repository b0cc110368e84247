"""The dead-letter table every consumer writes to and `jorge dlq` reads (PostgreSQL adapter).

A row is open (waiting for an operator), replayed or discarded. crm_sync's lane rows carry a
lane and are replayed through its retry topics; every other row is replayed to its origin topic.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from jorge_runtime.db import DbConnection, Executor

#: A dead letter waiting for an operator: neither replayed nor discarded (the partial unique
#: index crm_dead_letters_open_event has the same predicate).
OPEN = "replayed_at IS NULL AND discarded_at IS NULL"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One row of crm_dead_letters."""

    id: int
    organization_id: str | None
    event_id: uuid.UUID | None
    event_type: str | None
    message_key: str | None
    lane: str | None
    reason: str
    detail: str
    attempts: int
    headers: dict[str, str]
    body: bytes
    created_at: Any
    replayed_at: Any
    replay_count: int
    discarded_at: Any
    discard_note: str | None
    consumer: str = "crm_sync"
    origin_topic: str | None = None

    @property
    def status(self) -> str:
        """``open`` (waiting for an operator), ``replayed`` or ``discarded``."""
        if self.discarded_at is not None:
            return "discarded"
        return "replayed" if self.replayed_at is not None else "open"


@dataclass(frozen=True, slots=True)
class EventIdentity:
    """What a body says about itself, read leniently: an invalid body may say nothing."""

    event_id: uuid.UUID | None = None
    event_type: str | None = None
    organization_id: str | None = None


def identify(body: bytes) -> EventIdentity:
    """The envelope's id, type and organisation if the body is a JSON object holding them."""
    try:
        data = json.loads(body)
    except ValueError:
        return EventIdentity()
    if not isinstance(data, dict):
        return EventIdentity()
    try:
        event_id = uuid.UUID(str(data.get("event_id")))
    except ValueError:
        event_id = None
    event_type, organization = data.get("event_type"), data.get("organization_id")
    return EventIdentity(
        event_id,
        event_type[:200] if isinstance(event_type, str) else None,
        organization[:64] if isinstance(organization, str) else None,
    )


async def add_dead_letter(
    conn: Executor,
    *,
    consumer: str,
    origin_topic: str | None,
    organization_id: str | None,
    event_id: uuid.UUID | None,
    event_type: str | None,
    message_key: str | None,
    lane: str | None,
    reason: str,
    detail: str,
    attempts: int,
    headers: dict[str, str],
    body: bytes,
) -> int | None:
    """Store a dead letter; None if this consumer already has the event open.

    The conflict target is left implicit: the only unique index a new row can hit is the
    open-event one, and naming its predicate here would break this insert whenever a migration
    changes it (as 0012 and 0019 did) until every writer is upgraded."""
    return await conn.fetchval(
        """INSERT INTO crm_dead_letters (consumer, origin_topic, organization_id, event_id, event_type,
                                         message_key, lane, reason, detail, attempts, headers, body)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
               ON CONFLICT DO NOTHING
               RETURNING id""",
        consumer,
        origin_topic,
        organization_id,
        event_id,
        event_type,
        message_key,
        lane,
        reason,
        detail[:1000],
        attempts,
        headers,
        body,
    )


async def list_dead_letters(
    conn: Executor,
    *,
    ids: list[int] | None = None,
    reason: str | None = None,
    organization_id: str | None = None,
    consumer: str | None = None,
    include_closed: bool = False,
    limit: int = 1000,
) -> list[DeadLetter]:
    """Dead letters, oldest first, filtered (used by `jorge dlq`): open ones only unless
    ``include_closed`` (replayed and discarded ones too)."""
    rows = await conn.fetch(
        f"""SELECT * FROM crm_dead_letters
             WHERE ($1::bigint[] IS NULL OR id = ANY($1))
               AND ($2::text IS NULL OR reason = $2)
               AND ($3::text IS NULL OR organization_id = $3)
               AND ($4::text IS NULL OR consumer = $4)
               AND ($5 OR ({OPEN}))
             ORDER BY id LIMIT $6""",  # noqa: S608  constant SQL, values as $n placeholders
        ids,
        reason,
        organization_id,
        consumer,
        include_closed,
        limit,
    )
    return [DeadLetter(**{**dict(r), "headers": dict(r["headers"]), "body": bytes(r["body"])}) for r in rows]


async def mark_replayed(conn: DbConnection | asyncpg.Pool, dead_letter_id: int) -> bool:
    """Mark an open dead letter replayed; False if it is no longer open (replayed or discarded
    since it was listed): it must not be published then."""
    marked = await conn.fetchval(
        f"""UPDATE crm_dead_letters SET replayed_at = now(), replay_count = replay_count + 1
             WHERE id = $1 AND {OPEN} RETURNING id""",  # noqa: S608  constant SQL, values as $n placeholders
        dead_letter_id,
    )
    return marked is not None


async def discard_dead_letters(conn: Executor, ids: list[int], note: str) -> list[int]:
    """Close these dead letters for good with the operator's note: they stop being open and can
    never be replayed. Only open ones change (one replayed or discarded meanwhile stays as it
    is); returns the ids discarded."""
    rows = await conn.fetch(
        f"""UPDATE crm_dead_letters SET discarded_at = now(), discard_note = $2
             WHERE id = ANY($1::bigint[]) AND {OPEN} RETURNING id""",  # noqa: S608  constant SQL, values as $n placeholders
        ids,
        note,
    )
    return sorted(int(r["id"]) for r in rows)
