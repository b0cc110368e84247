"""The ``seller_consultations`` table: a seller's request for a consultation.

Writer: the gateway. Reader: crm_sync (the seller's contact details, when no lead has them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jorge_runtime.db import DbConnection, Executor
from schemas.sellers import ConsultationRequestedPayload


async def insert_request(
    conn: DbConnection, organization_id: str, request: ConsultationRequestedPayload, correlation_id: str
) -> datetime:
    """Record a consultation request; its created_at."""
    created_at: datetime = await conn.fetchval(
        """INSERT INTO seller_consultations
                  (id, organization_id, seller_id, status, request, correlation_id)
           VALUES ($1, $2, $3, 'requested', $4, $5) RETURNING created_at""",
        request.consultation_id,
        organization_id,
        request.seller_id,
        request.request.model_dump(mode="json"),
        correlation_id,
    )
    return created_at


async def latest_request_of_seller(
    conn: Executor, organization_id: str, seller_id: str
) -> dict[str, Any] | None:
    """The seller's latest consultation request as the API received it (name, email, phone, …)."""
    request: dict[str, Any] | None = await conn.fetchval(
        """SELECT request FROM seller_consultations WHERE organization_id = $1 AND seller_id = $2
            ORDER BY created_at DESC LIMIT 1""",
        organization_id,
        seller_id,
    )
    return request
