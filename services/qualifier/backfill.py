"""Re-qualify stored leads with Claude through the Message Batches API (half the price).

Submit: the leads whose latest completed qualification was made by the rules engine (or any,
on request) become one batch; its id and what each request belongs to are stored first, so a
crashed backfill resumes with ``collect``. Collect: when the batch has ended, each valid
answer becomes a new completed qualification row (the old one stays as history). Nothing is
published: a backfill corrects the record, it does not re-trigger webhooks or the CRM.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import anthropic
import asyncpg

from jorge_runtime.idempotency import EventLedger
from jorge_runtime.tables.leads import find_lead, has_qualification_from, latest_completed_per_lead
from schemas.envelope import utc_now
from schemas.leads import LeadToQualify, new_qualification_id
from services.qualifier.claude import ENGINE_NAME, ClaudeQualificationEngine, record_usage, usage_of
from services.qualifier.prompts import InvalidAnswer, parse_answer
from services.qualifier.repository import QualificationRepository

log = logging.getLogger(__name__)

#: The ledger in which a collect claims each lead of a batch.
BACKFILL_CONSUMER = "qualifier.backfill"


@dataclass(frozen=True)
class BackfillReport:
    """What one collected batch changed."""

    batch_id: str
    stored: int
    invalid: int
    errored: int
    cost_usd: float


async def leads_to_backfill(
    pool: asyncpg.Pool, *, organization_id: str | None, engine: str | None, limit: int
) -> list[tuple[str, LeadToQualify]]:
    """(organization, lead) pairs whose latest qualification was made by ``engine`` (None = any)."""
    rows = await latest_completed_per_lead(pool, organization_id)
    chosen = [row for row in rows if engine is None or row["engine"] == engine][:limit]
    return [
        (
            row["organization_id"],
            LeadToQualify(
                lead_id=row["lead_id"], name=row["name"], phone=row["phone"], email=row["email"],
                message=row["message"], property_address=row["property_address"], source=row["source"],
            ),
        )
        for row in chosen
    ]  # fmt: skip


async def submit(
    pool: asyncpg.Pool,
    client: anthropic.AsyncAnthropic,
    engine: ClaudeQualificationEngine,
    leads: list[tuple[str, LeadToQualify]],
    *,
    organization_id: str | None,
) -> str:
    """Create the batch and record it; returns the batch id."""
    requests: list[Any] = []
    items: dict[str, list[str]] = {}
    for n, (organization, lead) in enumerate(leads):
        custom_id = f"lead-{n:06d}"  # custom ids allow [A-Za-z0-9_-] only; lead ids may hold more
        params, _hint = engine.plan(lead)
        requests.append({"custom_id": custom_id, "params": params})
        items[custom_id] = [organization, lead.lead_id]
    batch = await client.messages.batches.create(requests=requests)
    await pool.execute(
        """INSERT INTO qualifier_batches (batch_id, organization_id, model, request_count, items)
           VALUES ($1, $2, $3, $4, $5)""",
        batch.id,
        organization_id,
        engine.model,
        len(requests),
        items,
    )
    log.info("backfill batch submitted", extra={"batch_id": batch.id, "requests": len(requests)})
    return batch.id


async def wait_until_ended(client: anthropic.AsyncAnthropic, batch_id: str, poll_seconds: float) -> None:
    """Poll the batch until the API says it has ended (batches may take up to 24 hours)."""
    while True:
        if (await client.messages.batches.retrieve(batch_id)).processing_status == "ended":
            return
        await asyncio.sleep(poll_seconds)


async def collect(
    pool: asyncpg.Pool,
    client: anthropic.AsyncAnthropic,
    batch_id: str,
    *,
    cache_ttl: str = "5m",
    expires_after_days: int = 7,
) -> BackfillReport:
    """Store every valid answer of an ended batch as a new completed qualification."""
    batch = await pool.fetchrow("SELECT items, status FROM qualifier_batches WHERE batch_id = $1", batch_id)
    if batch is None:
        raise LookupError(f"batch {batch_id} was not submitted by jorge backfill")
    items: dict[str, list[str]] = batch["items"]
    repository = QualificationRepository(expires_after_days)
    stored = invalid = errored = 0
    cost = 0.0
    async for entry in await client.messages.batches.results(batch_id):
        organization_lead = items.get(entry.custom_id)
        if organization_lead is None or entry.result.type != "succeeded":
            errored += 1
            continue
        message = entry.result.message
        usage = usage_of(message, message.model, cache_ttl, batch=True)
        record_usage(message.model, usage)
        cost += usage.cost_usd
        try:
            qualification = parse_answer(
                message.content, engine=ENGINE_NAME, model=message.model, usage=usage
            )
        except InvalidAnswer:
            invalid += 1
            continue
        stored += await _store(pool, repository, organization_lead, qualification, batch_id)
    await pool.execute(
        """UPDATE qualifier_batches SET status = 'ended', stored_count = $2, ended_at = now()
            WHERE batch_id = $1""",
        batch_id,
        stored,
    )
    return BackfillReport(batch_id, stored, invalid, errored, round(cost, 6))


async def _store(
    pool: asyncpg.Pool,
    repository: QualificationRepository,
    organization_lead: list[str],
    qualification: Any,
    batch_id: str,
) -> int:
    organization_id, lead_id = organization_lead
    row = await find_lead(pool, organization_id, lead_id)
    if row is None:
        return 0  # the lead was deleted since the batch was submitted
    correlation_id = f"backfill:{batch_id}"
    # One row per lead and batch: collecting the same batch twice must not add a second one
    # (the check finds a finished collect; the claim, on an id of its own, a concurrent one).
    if await has_qualification_from(pool, organization_id, lead_id, correlation_id):
        return 0
    stored = await repository.save_completed_once(
        EventLedger(pool, BACKFILL_CONSUMER),
        uuid.uuid5(uuid.NAMESPACE_URL, f"jorge:{correlation_id}:{organization_id}:{lead_id}"),
        [],
        organization_id=organization_id,
        qualification_id=new_qualification_id(),
        lead=LeadToQualify(**dict(row)),
        qualification=qualification,
        correlation_id=correlation_id,
        completed_at=utc_now(),
    )
    return 1 if stored else 0
