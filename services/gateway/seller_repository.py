"""The gateway's repository of sellers: their analyses and their consultation requests (SQL:
jorge_runtime.tables.seller_analyses and seller_consultations)."""

from __future__ import annotations

from datetime import datetime

from jorge_runtime.db import DbConnection, Executor
from jorge_runtime.tables import seller_analyses, seller_consultations
from schemas.sellers import (
    ConsultationRequestedPayload,
    SellerAnalysisRequestedPayload,
    SellerAnalysisResult,
    SellerAnalysisView,
)


class SellerRepository:
    """Seller analyses (the analyzer writes results) and consultation requests as the gateway sees them."""

    async def open_analysis(
        self,
        conn: DbConnection,
        organization_id: str,
        request: SellerAnalysisRequestedPayload,
        correlation_id: str,
    ) -> None:
        """Record a pending analysis, inside the caller's transaction."""
        await seller_analyses.open_pending(conn, organization_id, request, correlation_id)

    async def analysis(
        self, conn: Executor, organization_id: str, analysis_id: str
    ) -> SellerAnalysisView | None:
        """The analysis as the API shows it, or None if it is not this organisation's."""
        row = await seller_analyses.find(conn, organization_id, analysis_id)
        if row is None:
            return None
        result = SellerAnalysisResult.model_validate(row["result"]) if row["status"] == "completed" else None
        return SellerAnalysisView(
            analysis_id=row["id"],
            seller_id=row["seller_id"],
            status=row["status"],
            cma=result.cma if result else None,
            market_conditions=result.market_conditions if result else None,
            recommendations=result.recommendations if result else [],
            failure_reason=row["failure_reason"],
            created_at=row["created_at"],
            completed_at=row["completed_at"],
        )

    async def request_consultation(
        self,
        conn: DbConnection,
        organization_id: str,
        request: ConsultationRequestedPayload,
        correlation_id: str,
    ) -> datetime:
        """Record a consultation request, inside the caller's transaction; its created_at."""
        return await seller_consultations.insert_request(conn, organization_id, request, correlation_id)
