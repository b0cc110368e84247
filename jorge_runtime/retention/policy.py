"""What is old enough to delete, table by table: the retention policy, with no I/O.

Each rule names a table, the setting that bounds its age and what is never deleted whatever
its age. The adapter (jorge_runtime/retention/purge.py) turns the cutoffs into batched
deletes; the limits below are why the rules are safe:

- The idempotency ledger (processed_events, outbox) only has to outlive Kafka's retention
  (7 days by default): past it no redelivery can arrive, so a forgotten event id is never
  seen again. An event whose outbox still owes a message is never forgotten.
- Webhook history is what `GET /v1/webhooks/{id}/deliveries` shows; a delivery that is
  pending, or whose attempt is in flight, is never deleted, and a message goes only once no
  delivery of it is left (its source_event_id also deduplicates redelivered events).
- crm_sync_steps say which GHL writes of an event were made: an event with an open dead
  letter (or one replayed or discarded within the limit) keeps them, so a replay, or the
  event sent again, never writes twice.
- crm_dead_letters: only closed ones go (replayed, or discarded by an operator), measured
  from when they were closed; open ones wait for an operator.
- ghl_webhook_receipts refuse a replayed GHL webhook; past the signature's timestamp
  tolerance (minutes) a replay is refused by its age anyway, so the ledger's limit is ample.

Qualifications, match sessions, seller analyses and leads are never purged: the API returns
them with no time limit (a qualification's expires_at is shown, not enforced).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from jorge_runtime.settings import Settings


class Limit(StrEnum):
    """The age limits, one per setting."""

    LEDGER = "retention_ledger_days"
    WEBHOOKS = "retention_webhook_days"
    CRM_STEPS = "retention_crm_steps_days"
    DEAD_LETTERS = "retention_dead_letters_days"


@dataclass(frozen=True, slots=True)
class Rule:
    """One table's retention: its age limit, the timestamp it is measured on, what stays."""

    table: str
    limit: Limit
    measured_on: str
    kept: str


#: In the order the purge runs: children before parents (attempts, then deliveries, then the
#: messages left with none), outbox rows before the inbox rows they belong to.
RULES: tuple[Rule, ...] = (
    Rule("outbox", Limit.LEDGER, "published_at", "messages not yet published"),
    Rule("processed_events", Limit.LEDGER, "processed_at", "events whose outbox still owes a message"),
    Rule("webhook_attempts", Limit.WEBHOOKS, "their delivery's updated_at", "attempts of kept deliveries"),
    Rule("webhook_deliveries", Limit.WEBHOOKS, "updated_at", "pending deliveries and attempts in flight"),
    Rule("webhook_messages", Limit.WEBHOOKS, "created_at", "messages with a delivery left"),
    Rule("crm_dead_letters", Limit.DEAD_LETTERS, "replayed_at or discarded_at", "open dead letters"),
    Rule("crm_sync_steps", Limit.CRM_STEPS, "updated_at", "steps of open or lately closed dead letters"),
    Rule("ghl_webhook_receipts", Limit.LEDGER, "received_at", "nothing (a replay that old is stale)"),
)

TABLES: tuple[str, ...] = tuple(rule.table for rule in RULES)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Age limits in days per kind of row, and how many rows one statement deletes."""

    ledger_days: int = 14
    webhook_days: int = 30
    crm_steps_days: int = 30
    dead_letters_days: int = 30
    batch_size: int = 5000

    def __post_init__(self) -> None:
        for name in ("ledger_days", "webhook_days", "crm_steps_days", "dead_letters_days", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        """The policy the RETENTION_* settings describe."""
        return cls(
            ledger_days=settings.retention_ledger_days,
            webhook_days=settings.retention_webhook_days,
            crm_steps_days=settings.retention_crm_steps_days,
            dead_letters_days=settings.retention_dead_letters_days,
            batch_size=settings.retention_batch_size,
        )

    def days(self, limit: Limit) -> int:
        """The age limit in days of one kind of row."""
        return {
            Limit.LEDGER: self.ledger_days,
            Limit.WEBHOOKS: self.webhook_days,
            Limit.CRM_STEPS: self.crm_steps_days,
            Limit.DEAD_LETTERS: self.dead_letters_days,
        }[limit]

    def cutoff(self, limit: Limit, now: datetime) -> datetime:
        """Rows whose timestamp is strictly before this are old enough to delete."""
        return now - timedelta(days=self.days(limit))

    def cutoffs(self, now: datetime) -> dict[str, datetime]:
        """Each table's cutoff, in purge order."""
        return {rule.table: self.cutoff(rule.limit, now) for rule in RULES}


def run_is_due(last_finished: datetime | None, now: datetime, interval_seconds: float) -> bool:
    """Whether the periodic purge should run: never if the interval is 0, else when no replica
    finished one within the interval (one run per interval, whichever replica gets there)."""
    if interval_seconds <= 0:
        return False
    return last_finished is None or (now - last_finished).total_seconds() >= interval_seconds


def batch_is_last(deleted: int, batch_size: int) -> bool:
    """A batch that deleted fewer rows than it could is the last one of its table."""
    return deleted < batch_size


def format_counts(counts: dict[str, int], *, dry_run: bool) -> list[str]:
    """One line per table, in purge order, then the total: what `jorge purge` prints."""
    verb = "would delete" if dry_run else "deleted"
    lines = [f"{table:<20} {verb} {counts.get(table, 0):>10,}" for table in TABLES]
    lines.append(f"{'total':<20} {verb} {sum(counts.get(t, 0) for t in TABLES):>10,}")
    return lines
