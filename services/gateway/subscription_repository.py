"""PostgreSQL adapter of the gateway's webhook subscriptions, deliveries and attempts.

Every query is scoped to the caller's organisation; deleted endpoints are invisible. Secrets
are written here and returned only by the two statements that create them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from jorge_runtime.db import DbConnection

Db = DbConnection | asyncpg.Pool
#: (created_at, id) of the last row of a page: the next page starts strictly after it.
Position = tuple[datetime, str]

_ENDPOINT = """id, url, events, description, status, disabled_reason, max_concurrency, failing_since,
    CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END
        AS previous_secret_expires_at,
    created_at, updated_at"""

_DELIVERY = """d.id, d.endpoint_id, d.message_id, m.event_type, d.status, d.attempts AS attempt_count,
    d.last_response_code, d.next_attempt_at, d.created_at, d.updated_at"""

_UPDATE = f"""
UPDATE webhook_endpoints SET
    url = COALESCE($3::text, url),
    events = COALESCE($4::text[], events),
    description = CASE WHEN $5::boolean THEN $6::text ELSE description END,
    max_concurrency = COALESCE($7::int, max_concurrency),
    status = COALESCE($8::text, status),
    disabled_reason = CASE WHEN $8::text IS NULL OR $8::text = status THEN disabled_reason
                           WHEN $8::text = 'disabled' THEN 'disabled_by_user' END,
    -- Re-enabling starts a fresh record: the engine's give-up clock must not fire at once.
    failing_since = CASE WHEN $8::text = 'active' AND status <> 'active' THEN NULL ELSE failing_since END,
    updated_at = now()
WHERE organization_id = $1 AND id = $2 AND status <> 'deleted'
RETURNING {_ENDPOINT}"""  # noqa: S608  constant SQL, values as $n placeholders


def _dict(row: asyncpg.Record | None) -> dict[str, Any] | None:
    return dict(row) if row is not None else None


class WebhookRepository:
    """Webhook records as the gateway sees them: it owns subscriptions, reads delivery history,
    and creates test messages and redelivery requests for the delivery engine."""

    async def count_live_endpoints(self, db: Db, organization_id: str) -> int:
        """How many endpoints the organisation has that are not deleted."""
        live: int = await db.fetchval(
            "SELECT count(*) FROM webhook_endpoints WHERE organization_id = $1 AND status <> 'deleted'",
            organization_id,
        )
        return live

    async def create_endpoint(
        self,
        db: Db,
        organization_id: str,
        *,
        endpoint_id: str,
        url: str,
        events: list[str],
        description: str | None,
        sealed_secret: bytes,
        max_concurrency: int,
    ) -> dict[str, Any]:
        """Store a new active endpoint with its secret (encrypted: jorge_runtime.webhook_secrets)."""
        row = await db.fetchrow(
            f"""INSERT INTO webhook_endpoints
                    (id, organization_id, url, events, description, secret_encrypted, max_concurrency)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_ENDPOINT}""",  # noqa: S608  constant SQL, values as $n placeholders
            endpoint_id, organization_id, url, events, description, sealed_secret, max_concurrency,
        )  # fmt: skip
        assert row is not None
        return dict(row)

    async def list_endpoints(
        self, db: Db, organization_id: str, *, limit: int, after: Position | None
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` endpoints, newest first, starting after ``after``."""
        rows = await db.fetch(
            f"""SELECT {_ENDPOINT} FROM webhook_endpoints
                 WHERE organization_id = $1 AND status <> 'deleted'
                   AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::text))
                 ORDER BY created_at DESC, id DESC LIMIT $4""",  # noqa: S608  constant SQL, values as $n placeholders
            organization_id,
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )
        return [dict(r) for r in rows]

    async def get_endpoint(self, db: Db, organization_id: str, endpoint_id: str) -> dict[str, Any] | None:
        """The endpoint, without its secrets, or None (unknown, deleted or another organisation's)."""
        return _dict(
            await db.fetchrow(
                f"""SELECT {_ENDPOINT} FROM webhook_endpoints
                     WHERE organization_id = $1 AND id = $2 AND status <> 'deleted'""",  # noqa: S608  constant SQL, values as $n placeholders
                organization_id,
                endpoint_id,
            )
        )

    async def update_endpoint(
        self, db: Db, organization_id: str, endpoint_id: str, changes: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Apply ``changes`` (keys: url, events, description, max_concurrency, status); None if absent."""
        return _dict(
            await db.fetchrow(
                _UPDATE,
                organization_id,
                endpoint_id,
                changes.get("url"),
                changes.get("events"),
                "description" in changes,
                changes.get("description"),
                changes.get("max_concurrency"),
                changes.get("status"),
            )
        )

    async def delete_endpoint(self, conn: DbConnection, organization_id: str, endpoint_id: str) -> bool:
        """Soft-delete (history stays), forget its secrets, and give up its pending deliveries."""
        async with conn.transaction():
            deleted = await conn.fetchval(
                """UPDATE webhook_endpoints
                      SET status = 'deleted', secret = NULL, previous_secret = NULL,
                          secret_encrypted = NULL, previous_secret_encrypted = NULL,
                          previous_secret_expires_at = NULL, updated_at = now()
                    WHERE organization_id = $1 AND id = $2 AND status <> 'deleted' RETURNING true""",
                organization_id,
                endpoint_id,
            )
            if deleted:
                await conn.execute(
                    """UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL,
                              updated_at = now()
                        WHERE endpoint_id = $1 AND status = 'pending'""",
                    endpoint_id,
                )
        return bool(deleted)

    async def rotate_secret(
        self, db: Db, organization_id: str, endpoint_id: str, *, sealed_secret: bytes, overlap_seconds: int
    ) -> dict[str, Any] | None:
        """Make ``sealed_secret`` current; the one it replaces keeps signing for ``overlap_seconds``."""
        return _dict(
            await db.fetchrow(
                f"""UPDATE webhook_endpoints
                       SET previous_secret_encrypted = CASE WHEN $4::int > 0 THEN secret_encrypted END,
                           previous_secret = NULL,
                           previous_secret_expires_at =
                               CASE WHEN $4::int > 0 THEN now() + make_interval(secs => $4::int) END,
                           secret_encrypted = $3, secret = NULL, updated_at = now()
                     WHERE organization_id = $1 AND id = $2 AND status <> 'deleted'
                 RETURNING {_ENDPOINT}""",  # noqa: S608  constant SQL, values as $n placeholders
                organization_id,
                endpoint_id,
                sealed_secret,
                overlap_seconds,
            )
        )

    async def endpoint_status(self, conn: DbConnection, organization_id: str, endpoint_id: str) -> str | None:
        """The endpoint's status, share-locked until the transaction ends so it cannot be deleted
        under a delivery being requested; None if absent."""
        status = await conn.fetchval(
            """SELECT status FROM webhook_endpoints
                WHERE organization_id = $1 AND id = $2 AND status <> 'deleted' FOR SHARE""",
            organization_id,
            endpoint_id,
        )
        return str(status) if status is not None else None

    async def create_manual_delivery(
        self,
        conn: DbConnection,
        organization_id: str,
        endpoint_id: str,
        *,
        message_id: str,
        delivery_id: str,
        event_type: str,
        payload: dict[str, Any],
    ) -> None:
        """Store a message and its pending delivery to one endpoint, due now, triggered manually."""
        await conn.execute(
            """INSERT INTO webhook_messages (id, organization_id, event_type, payload)
               VALUES ($1, $2, $3, $4)""",
            message_id,
            organization_id,
            event_type,
            payload,
        )
        await conn.execute(
            """INSERT INTO webhook_deliveries (id, endpoint_id, message_id, next_attempt_at, next_trigger)
               VALUES ($1, $2, $3, now(), 'manual')""",
            delivery_id,
            endpoint_id,
            message_id,
        )

    async def request_redelivery(
        self, conn: DbConnection, endpoint_id: str, delivery_id: str
    ) -> dict[str, Any] | None:
        """Mark the delivery pending, due now, with a manual trigger; None if it is not this endpoint's."""
        return _dict(
            await conn.fetchrow(
                f"""UPDATE webhook_deliveries d
                       SET status = 'pending', next_attempt_at = now(), next_trigger = 'manual',
                           updated_at = now()
                      FROM webhook_messages m
                     WHERE d.id = $2 AND d.endpoint_id = $1 AND m.id = d.message_id
                 RETURNING {_DELIVERY}""",  # noqa: S608  constant SQL, values as $n placeholders
                endpoint_id,
                delivery_id,
            )
        )

    async def list_deliveries(
        self, db: Db, endpoint_id: str, *, status: str | None, limit: int, after: Position | None
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` deliveries of an endpoint the caller owns, newest first."""
        rows = await db.fetch(
            f"""SELECT {_DELIVERY}
                  FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id
                 WHERE d.endpoint_id = $1 AND ($2::text IS NULL OR d.status = $2::text)
                   AND ($3::timestamptz IS NULL OR (d.created_at, d.id) < ($3::timestamptz, $4::text))
                 ORDER BY d.created_at DESC, d.id DESC LIMIT $5""",  # noqa: S608  constant SQL, values as $n placeholders
            endpoint_id,
            status,
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )
        return [dict(r) for r in rows]

    async def get_delivery(self, db: Db, endpoint_id: str, delivery_id: str) -> dict[str, Any] | None:
        """A delivery of an endpoint the caller owns, with its payload and attempts (oldest first)."""
        row = await db.fetchrow(
            f"""SELECT {_DELIVERY}, m.payload
                  FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id
                 WHERE d.endpoint_id = $1 AND d.id = $2""",  # noqa: S608  constant SQL, values as $n placeholders
            endpoint_id,
            delivery_id,
        )
        if row is None:
            return None
        attempts = await db.fetch(
            """SELECT id, attempt_number, trigger, status, url, started_at, duration_ms,
                      response_status, response_body, error
                 FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt_number""",
            delivery_id,
        )
        return dict(row) | {"attempts": [dict(a) for a in attempts]}
