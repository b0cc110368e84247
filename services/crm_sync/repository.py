"""PostgreSQL adapter of crm_sync: contact mapping, step progress, dead letters,
and the people's contact details and results other services stored (credentials: see
credential_store.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from jorge_runtime.db import DbConnection, Executor
from services.crm_sync.mapping import ContactDetails

#: A dead letter waiting for an operator: neither replayed nor discarded (the partial unique
#: index crm_dead_letters_open_event has the same predicate).
_OPEN = "replayed_at IS NULL AND discarded_at IS NULL"


class PersonBusy(Exception):
    """Another replica is writing this person's CRM records right now."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One row of crm_dead_letters."""

    id: int
    organization_id: str | None
    event_id: uuid.UUID | None
    event_type: str | None
    message_key: str | None
    lane: str
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

    @property
    def status(self) -> str:
        """``open`` (waiting for an operator), ``replayed`` or ``discarded``."""
        if self.discarded_at is not None:
            return "discarded"
        return "replayed" if self.replayed_at is not None else "open"


class CrmRepository:
    """Every query crm_sync runs."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # --- one person at a time ---------------------------------------------------------------
    @asynccontextmanager
    async def person_lock(self, organization_id: str, person_id: str) -> AsyncIterator[None]:
        """Hold a session advisory lock on the person while writing their CRM records; raise
        PersonBusy if another replica holds it. A dead holder's lock goes with its connection."""
        async with self._pool.acquire() as conn:
            key = f"crm:{organization_id}:{person_id}"
            if not await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key):
                raise PersonBusy(person_id)
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)

    # --- contacts ---------------------------------------------------------------------------
    async def contact_id(self, organization_id: str, location_id: str, person_id: str) -> str | None:
        value = await self._pool.fetchval(
            """SELECT contact_id FROM crm_contacts
                WHERE organization_id = $1 AND location_id = $2 AND person_id = $3""",
            organization_id,
            location_id,
            person_id,
        )
        return str(value) if value is not None else None

    async def save_contact(
        self, organization_id: str, location_id: str, person_id: str, contact_id: str
    ) -> str:
        """Record the mapping; if one exists already it wins and is returned."""
        value = await self._pool.fetchval(
            """INSERT INTO crm_contacts (organization_id, location_id, person_id, contact_id)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (organization_id, location_id, person_id)
                 DO UPDATE SET contact_id = crm_contacts.contact_id
               RETURNING contact_id""",
            organization_id,
            location_id,
            person_id,
            contact_id,
        )
        return str(value)

    async def known_contact(self, organization_id: str, person_id: str) -> ContactDetails:
        """A person's details from what the gateway stored: the lead with that id, else their
        latest consultation request."""
        lead = await self._pool.fetchrow(
            "SELECT name, email, phone FROM leads WHERE organization_id = $1 AND lead_id = $2",
            organization_id,
            person_id,
        )
        if lead is not None and (lead["email"] or lead["phone"]):
            return ContactDetails(lead["name"], lead["email"], lead["phone"])
        request = await self._pool.fetchval(
            """SELECT request FROM seller_consultations WHERE organization_id = $1 AND seller_id = $2
                ORDER BY created_at DESC LIMIT 1""",
            organization_id,
            person_id,
        )
        if request:
            return ContactDetails(request.get("name"), request.get("email"), request.get("phone"))
        return ContactDetails()

    async def seller_address(self, organization_id: str, analysis_id: str) -> str | None:
        """The address of the home a seller analysis priced, as the gateway stored it."""
        request = await self._pool.fetchval(
            "SELECT request FROM seller_analyses WHERE organization_id = $1 AND id = $2",
            organization_id,
            analysis_id,
        )
        address = (request or {}).get("property", {}).get("property_address")
        return str(address) if address else None

    # --- steps and events -------------------------------------------------------------------
    async def step_status(self, event_id: uuid.UUID, step: str) -> tuple[str, str | None] | None:
        row = await self._pool.fetchrow(
            "SELECT status, result FROM crm_sync_steps WHERE event_id = $1 AND step = $2", event_id, step
        )
        return (row["status"], row["result"]) if row else None

    async def start_step(self, event_id: uuid.UUID, step: str) -> None:
        await self._pool.execute(
            """INSERT INTO crm_sync_steps (event_id, step, status) VALUES ($1, $2, 'started')
               ON CONFLICT (event_id, step) DO NOTHING""",
            event_id,
            step,
        )

    async def finish_step(self, event_id: uuid.UUID, step: str, result: str | None = None) -> None:
        await self._pool.execute(
            """INSERT INTO crm_sync_steps (event_id, step, status, result) VALUES ($1, $2, 'done', $3)
               ON CONFLICT (event_id, step) DO UPDATE SET status = 'done', result = $3, updated_at = now()""",
            event_id,
            step,
            result,
        )

    # --- dead letters ---------------------------------------------------------------------
    async def add_dead_letter(
        self,
        conn: Executor,
        *,
        organization_id: str | None,
        event_id: uuid.UUID | None,
        event_type: str | None,
        message_key: str | None,
        lane: str,
        reason: str,
        detail: str,
        attempts: int,
        headers: dict[str, str],
        body: bytes,
    ) -> int | None:
        """Store a dead letter; None if the event already has an open one.

        The conflict target is left implicit: the only unique index a new row can hit is the
        open-event one, and naming its predicate here would break this insert whenever a
        migration changes it (as 0012 did) until every crm_sync is upgraded."""
        return await conn.fetchval(
            """INSERT INTO crm_dead_letters (organization_id, event_id, event_type, message_key, lane,
                                                 reason, detail, attempts, headers, body)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                   ON CONFLICT DO NOTHING
                   RETURNING id""",
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
               AND ($4 OR ({_OPEN}))
             ORDER BY id LIMIT $5""",  # noqa: S608  constant SQL, values as $n placeholders
        ids,
        reason,
        organization_id,
        include_closed,
        limit,
    )
    return [DeadLetter(**{**dict(r), "headers": dict(r["headers"]), "body": bytes(r["body"])}) for r in rows]


async def mark_replayed(conn: DbConnection | asyncpg.Pool, dead_letter_id: int) -> bool:
    """Mark an open dead letter replayed; False if it is no longer open (replayed or discarded
    since it was listed): it must not be published then."""
    marked = await conn.fetchval(
        f"""UPDATE crm_dead_letters SET replayed_at = now(), replay_count = replay_count + 1
             WHERE id = $1 AND {_OPEN} RETURNING id""",  # noqa: S608  constant SQL, values as $n placeholders
        dead_letter_id,
    )
    return marked is not None


async def discard_dead_letters(conn: Executor, ids: list[int], note: str) -> list[int]:
    """Close these dead letters for good with the operator's note: they stop being open and can
    never be replayed. Only open ones change (one replayed or discarded meanwhile stays as it
    is); returns the ids discarded."""
    rows = await conn.fetch(
        f"""UPDATE crm_dead_letters SET discarded_at = now(), discard_note = $2
             WHERE id = ANY($1::bigint[]) AND {_OPEN} RETURNING id""",  # noqa: S608  constant SQL, values as $n placeholders
        ids,
        note,
    )
    return sorted(int(r["id"]) for r in rows)
