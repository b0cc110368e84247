"""PostgreSQL adapter of the seller analyzer: stores analyses and wakes waiting gateways."""

from __future__ import annotations

from datetime import datetime

from jorge_runtime.db import DbConnection
from jorge_runtime.results import SELLER_ANALYSIS, notify_result
from schemas.sellers import SellerAnalysisRequestedPayload, SellerAnalysisResult


class SellerAnalysisRepository:
    """Writes an analysis's outcome; safe for an analysis whose gateway transaction never committed."""

    async def save(
        self,
        conn: DbConnection,
        *,
        organization_id: str,
        request: SellerAnalysisRequestedPayload,
        result: SellerAnalysisResult | None,
        failure_reason: str | None,
        correlation_id: str,
        completed_at: datetime,
    ) -> None:
        """Store the analysis as completed (with its CMA) or failed (with the reason) and notify,
        in the caller's transaction. An analysis id of another organisation is left alone."""
        await conn.execute(
            """INSERT INTO seller_analyses (id, organization_id, seller_id, status, request, result,
                                            failure_reason, correlation_id, completed_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (id) DO UPDATE
                  SET status = EXCLUDED.status, result = EXCLUDED.result,
                      failure_reason = EXCLUDED.failure_reason, completed_at = EXCLUDED.completed_at
                WHERE seller_analyses.organization_id = EXCLUDED.organization_id""",
            request.analysis_id,
            organization_id,
            request.seller_id,
            "completed" if result is not None else "failed",
            request.model_dump(mode="json"),
            result.model_dump(mode="json") if result is not None else None,
            failure_reason,
            correlation_id,
            completed_at,
        )
        await notify_result(conn, SELLER_ANALYSIS, request.analysis_id)
