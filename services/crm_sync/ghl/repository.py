"""PostgreSQL adapter of crm_sync: contact mapping, step progress, dead letters,
and the people's contact details and results other services stored (credentials: see
credential_store.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from jorge_runtime.db import Executor

# The dead-letter table is shared by every consumer now; these stay importable from here.
from jorge_runtime.kafka.dead_letters import DeadLetter as DeadLetter
from jorge_runtime.kafka.dead_letters import add_dead_letter
from jorge_runtime.kafka.dead_letters import discard_dead_letters as discard_dead_letters
from jorge_runtime.kafka.dead_letters import list_dead_letters as list_dead_letters
from jorge_runtime.kafka.dead_letters import mark_replayed as mark_replayed
from jorge_runtime.tables.leads import find_lead
from jorge_runtime.tables.seller_analyses import stored_request
from jorge_runtime.tables.seller_consultations import latest_request_of_seller
from services.crm_sync.ghl.mapping import ContactDetails
from services.crm_sync.names import SERVICE


class PersonBusy(Exception):
    """Another replica is writing this person's CRM records right now."""


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
        lead = await find_lead(self._pool, organization_id, person_id)
        if lead is not None and (lead["email"] or lead["phone"]):
            return ContactDetails(lead["name"], lead["email"], lead["phone"])
        request = await latest_request_of_seller(self._pool, organization_id, person_id)
        if request:
            return ContactDetails(request.get("name"), request.get("email"), request.get("phone"))
        return ContactDetails()

    async def seller_address(self, organization_id: str, analysis_id: str) -> str | None:
        """The address of the home a seller analysis priced, as the gateway stored it."""
        request = await stored_request(self._pool, organization_id, analysis_id)
        address = (request or {}).get("property", {}).get("property_address")
        return str(address) if address else None

    # --- steps and events -------------------------------------------------------------------
    async def steps(self, event_id: uuid.UUID) -> dict[str, tuple[str, str | None]]:
        """Every step of the event recorded so far: step -> (status, result). One round trip for
        all of them, not one per step: it is on every event's way to GHL."""
        rows = await self._pool.fetch(
            "SELECT step, status, result FROM crm_sync_steps WHERE event_id = $1", event_id
        )
        return {row["step"]: (row["status"], row["result"]) for row in rows}

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
        """Store a dead letter of crm_sync's; None if the event already has an open one."""
        return await add_dead_letter(
            conn,
            consumer=SERVICE,  # the consumer column of crm_sync's own dead letters
            origin_topic=None,
            organization_id=organization_id,
            event_id=event_id,
            event_type=event_type,
            message_key=message_key,
            lane=lane,
            reason=reason,
            detail=detail,
            attempts=attempts,
            headers=headers,
            body=body,
        )
