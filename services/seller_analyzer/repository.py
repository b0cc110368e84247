"""PostgreSQL adapter of the seller analyzer: stores analyses and wakes waiting gateways."""

from __future__ import annotations

from datetime import datetime

from jorge_runtime.db import DbConnection
from jorge_runtime.results import SELLER_ANALYSIS, notify_result
from jorge_runtime.tables import seller_analyses
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
        await seller_analyses.save_outcome(
            conn,
            organization_id=organization_id,
            request=request,
            result=result,
            failure_reason=failure_reason,
            correlation_id=correlation_id,
            completed_at=completed_at,
        )
        await notify_result(conn, SELLER_ANALYSIS, request.analysis_id)
