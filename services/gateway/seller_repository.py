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


def _stored_request(table: str, status: str, returned: str) -> str:
    """A seller's request row in ``table`` with the request's event: parameters $10-$14 are its
    id, organisation, seller, request document and correlation id."""
    return f"""
WITH accepted AS (
    INSERT INTO {table} (id, organization_id, seller_id, status, request, correlation_id)
    VALUES ($10, $11, $12, '{status}', $13, $14)
    RETURNING {returned}
), {ACCEPT_CTES}
SELECT {returned} FROM accepted"""  # noqa: S608  constant SQL from the two calls below, values as $n


_OPEN_ANALYSIS = _stored_request("seller_analyses", "pending", "id")
_REQUEST_CONSULTATION = _stored_request("seller_consultations", "requested", "created_at")


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
