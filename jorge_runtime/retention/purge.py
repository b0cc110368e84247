"""The purge: batched deletes of what jorge_runtime.retention.policy says is old enough.

Each statement finds at most ``batch_size`` rows through an index on the row's age (migration
0011), locks them and deletes them by ctid (a TID scan: joining back on the key lets the
planner read the whole table). SKIP LOCKED leaves a row a worker is updating right now (a
delivery being claimed or redelivered) for the next run, and the row-level recheck of FOR
UPDATE drops one that stopped qualifying (a delivery made pending again). Statements run one
after another in autocommit, so no long transaction holds back vacuum or locks.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from jorge_runtime.db import Executor
from jorge_runtime.retention.policy import RULES, RetentionPolicy, batch_is_last

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Statements:
    """A table's batched delete ($1 cutoff, $2 batch size) and its dry-run count ($1 cutoff)."""

    delete: str
    count: str


# A delivery whose history may go: finished (or given up), no attempt in flight, untouched
# since the cutoff. A lease past its expiry belongs to a dead process, not to an attempt.
_DELIVERY_DONE = """d.status <> 'pending' AND (d.lease_expires_at IS NULL OR d.lease_expires_at < now())
                   AND d.updated_at < $1"""

# When a dead letter was closed (replayed or discarded); NULL while it is open. Migration 0012
# indexes this expression for the purge.
_CLOSED_AT = "COALESCE(replayed_at, discarded_at)"

# Steps untouched since the cutoff, unless their event has a dead letter that is open (counted
# as closed at infinity) or was closed since the cutoff: a replay must find them.
_STEPS_FREE = """s.updated_at < $1
                 AND NOT EXISTS (SELECT 1 FROM crm_dead_letters d
                                  WHERE d.event_id = s.event_id
                                    AND COALESCE(d.replayed_at, d.discarded_at, 'infinity') >= $1)"""


def _aged(table: str, where: str) -> _Statements:
    """The batched delete and the dry-run count of the rows of ``table`` (with an alias that
    ``where`` may use) that ``where`` ($1 the cutoff) says may go."""
    name = table.split()[0]
    return _Statements(
        delete=f"""WITH doomed AS (SELECT ctid FROM {table} WHERE {where}
                                    LIMIT $2 FOR UPDATE SKIP LOCKED),
                        gone AS (DELETE FROM {name} WHERE ctid = ANY(ARRAY(SELECT ctid FROM doomed))
                                 RETURNING 1)
                   SELECT count(*) FROM gone""",  # noqa: S608  constant SQL, values as $n placeholders
        count=f"SELECT count(*) FROM {table} WHERE {where}",  # noqa: S608  constant SQL, values as $n placeholders
    )


# A processed event whose outbox still owes a message stays: a redelivery must find it.
_LEDGER_FREE = """processed_at < $1
                  AND NOT EXISTS (SELECT 1 FROM outbox o
                                   WHERE o.consumer = p.consumer AND o.source_event_id = p.event_id
                                     AND o.published_at IS NULL)"""

_STATEMENTS: dict[str, _Statements] = {
    "outbox": _aged("outbox", "published_at < $1"),
    "processed_events": _aged("processed_events p", _LEDGER_FREE),
    # Attempts are deleted with their deliveries (one statement, see _purge_deliveries).
    "webhook_attempts": _Statements(
        delete="",
        count=f"""SELECT count(*) FROM webhook_attempts a
                   JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE {_DELIVERY_DONE}""",  # noqa: S608  constant SQL, values as $n placeholders
    ),
    "webhook_deliveries": _Statements(
        delete=f"""WITH doomed AS (SELECT id, ctid FROM webhook_deliveries d WHERE {_DELIVERY_DONE}
                                    LIMIT $2 FOR UPDATE SKIP LOCKED),
                        attempts AS (DELETE FROM webhook_attempts
                                      WHERE delivery_id = ANY(ARRAY(SELECT id FROM doomed)) RETURNING 1),
                        gone AS (DELETE FROM webhook_deliveries
                                  WHERE ctid = ANY(ARRAY(SELECT ctid FROM doomed))
                                 RETURNING 1)
                   SELECT (SELECT count(*) FROM gone) AS deliveries,
                          (SELECT count(*) FROM attempts) AS attempts""",  # noqa: S608  constant SQL, values as $n placeholders
        count=f"SELECT count(*) FROM webhook_deliveries d WHERE {_DELIVERY_DONE}",  # noqa: S608  constant SQL, values as $n placeholders
    ),
    "webhook_messages": _Statements(
        delete=_aged(
            "webhook_messages m",
            "created_at < $1 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.message_id = m.id)",
        ).delete,
        # In a dry run the deliveries are still there: count messages none of whose deliveries stays.
        count=f"""SELECT count(*) FROM webhook_messages m
                   WHERE created_at < $1
                     AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                                      WHERE d.message_id = m.id AND NOT ({_DELIVERY_DONE}))""",  # noqa: S608  constant SQL, values as $n placeholders
    ),
    "crm_dead_letters": _aged("crm_dead_letters", f"{_CLOSED_AT} < $1"),
    "crm_sync_steps": _aged("crm_sync_steps s", _STEPS_FREE),
    "ghl_webhook_receipts": _aged("ghl_webhook_receipts", "received_at < $1"),
}


async def purge(
    db: Executor, policy: RetentionPolicy, *, dry_run: bool = False, now: datetime | None = None
) -> dict[str, int]:
    """Delete (or, dry, count) every row the policy says is old enough; rows per table.

    ``now`` defaults to the current time; tests pass one to age the data instead of the clock.
    """
    cutoffs = policy.cutoffs(now or datetime.now(UTC))
    counts = dict.fromkeys(_STATEMENTS, 0)
    for rule in RULES:
        cutoff = cutoffs[rule.table]
        if dry_run:
            counts[rule.table] = int(await db.fetchval(_STATEMENTS[rule.table].count, cutoff))
        elif rule.table == "webhook_deliveries":
            deliveries, attempts = await _purge_deliveries(db, cutoff, policy.batch_size)
            counts["webhook_deliveries"], counts["webhook_attempts"] = deliveries, attempts
        elif rule.table != "webhook_attempts":
            counts[rule.table] = await _purge_table(db, rule.table, cutoff, policy.batch_size)
    return counts


async def _purge_table(db: Executor, table: str, cutoff: datetime, batch_size: int) -> int:
    total = 0
    while True:
        deleted = int(await db.fetchval(_STATEMENTS[table].delete, cutoff, batch_size))
        total += deleted
        if batch_is_last(deleted, batch_size):
            return total
        await asyncio.sleep(0)  # let the process's other work in between batches


async def _purge_deliveries(db: Executor, cutoff: datetime, batch_size: int) -> tuple[int, int]:
    deliveries = attempts = 0
    while True:
        row = await db.fetchrow(_STATEMENTS["webhook_deliveries"].delete, cutoff, batch_size)
        assert row is not None
        deliveries += int(row["deliveries"])
        attempts += int(row["attempts"])
        if batch_is_last(int(row["deliveries"]), batch_size):
            return deliveries, attempts
        await asyncio.sleep(0)


def log_counts(counts: dict[str, int], *, dry_run: bool = False) -> None:
    """One log line with every table's count."""
    log.info("retention purge %s", "counted" if dry_run else "done", extra={"deleted": counts})
