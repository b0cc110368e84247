"""The gateway's repository of sellers: their analyses and their consultation requests (SQL:
jorge_runtime.tables.seller_analyses and seller_consultations)."""

from __future__ import annotations

from datetime import datetime

from jorge_runtime.db import Executor
from jorge_runtime.tables import seller_analyses
from schemas.sellers import (
    ConsultationRequestedPayload,
    SellerAnalysisRequestedPayload,
    SellerAnalysisResult,
    SellerAnalysisView,
)
from services.gateway.outbox import ACCEPT_CTES, Accept

# A pending analysis, with the request's event.
_OPEN_ANALYSIS = f"""
WITH accepted AS (
    INSERT INTO seller_analyses (id, organization_id, seller_id, status, request, correlation_id)
    VALUES ($10, $11, $12, 'pending', $13, $14)
    RETURNING id
), {ACCEPT_CTES}
SELECT id FROM accepted"""  # noqa: S608  constant SQL, values as $n placeholders

# A consultation request, with the request's event.
_REQUEST_CONSULTATION = f"""
WITH accepted AS (
    INSERT INTO seller_consultations (id, organization_id, seller_id, status, request, correlation_id)
    VALUES ($10, $11, $12, 'requested', $13, $14)
    RETURNING created_at
), {ACCEPT_CTES}
SELECT created_at FROM accepted"""  # noqa: S608  constant SQL, values as $n placeholders


class SellerRepository:
    """Seller analyses (the analyzer writes results) and consultation requests as the gateway sees them."""

    async def open_analysis(
        self,
        accept: Accept,
        organization_id: str,
        request: SellerAnalysisRequestedPayload,
        correlation_id: str,
    ) -> None:
        """Store a pending analysis with the request's event."""
        await accept(
            _OPEN_ANALYSIS,
            request.analysis_id, organization_id, request.seller_id, request.model_dump(mode="json"),
            correlation_id,
        )  # fmt: skip

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
        self, accept: Accept, organization_id: str, request: ConsultationRequestedPayload, correlation_id: str
    ) -> datetime:
        """Store a consultation request with the request's event; its created_at."""
        row = await accept(
            _REQUEST_CONSULTATION,
            request.consultation_id, organization_id, request.seller_id,
            request.request.model_dump(mode="json"), correlation_id,
        )  # fmt: skip
        assert row is not None  # a fresh id: always inserted
        created_at: datetime = row["created_at"]
        return created_at
