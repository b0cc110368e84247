"""The ``seller_consultations`` table: a seller's request for a consultation.

Writer: the gateway (in one statement with its event: services/gateway/seller_repository.py).
Reader: crm_sync (the seller's contact details, when no lead has them).
"""

from __future__ import annotations

from typing import Any

from jorge_runtime.db import Executor


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
