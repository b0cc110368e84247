"""Gateway routes for /v1/sellers: store a home to price or a consultation request, publish it,
read the analysis.

The gateway never prices: it stores the request and stages its event in one statement
(publishing.accepting), then publishes it; the seller analyzer and crm_sync do the work.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Path, Request

from jorge_runtime.kafka.broker import event_message
from jorge_runtime.results import SELLER_ANALYSIS
from schemas.sellers import (
    ANALYSIS_ID_PATTERN,
    SELLER_ID_PATTERN,
    AnalysisAccepted,
    AnalyzePropertyRequest,
    ConsultationRequest,
    ConsultationRequested,
    ConsultationRequestedPayload,
    ConsultationView,
    SellerAnalysisRequested,
    SellerAnalysisRequestedPayload,
    SellerAnalysisView,
    new_analysis_id,
    new_consultation_id,
)
from schemas.topics import SELLER_ANALYSIS_REQUESTED, SELLER_CONSULTATION_REQUESTED
from services.gateway.dependencies import CallerDep, GatewayDep
from services.gateway.errors import BUS_DOWN, ApiError, documented_errors
from services.gateway.publishing import accepting
from services.gateway.results import WAIT_QUERY, accepted_or_result

router = APIRouter(tags=["sellers"])

_SELLER_ID = Path(pattern=SELLER_ID_PATTERN, examples=["seller-001"])
_ANALYSIS_ID = Path(pattern=ANALYSIS_ID_PATTERN, examples=["cma-3f9c0a1b2c3d4e5f607182"])


def _check_home(body: AnalyzePropertyRequest) -> None:
    """The rules a schema cannot express: 400 with a code naming the problem."""
    if (body.latitude is None) != (body.longitude is None):
        raise ApiError(400, "invalid_location", "Give latitude and longitude together, or neither.")
    next_year = datetime.now(UTC).year + 1
    if body.year_built is not None and body.year_built > next_year:
        raise ApiError(400, "invalid_year_built", f"year_built ({body.year_built}) is after {next_year}.")


@router.post(
    "/v1/sellers/analyze",
    status_code=202,
    response_model=AnalysisAccepted,
    responses={
        200: {"model": SellerAnalysisView, "description": "With `wait`: the analyzer's CMA, stored in time."},
        **documented_errors(
            invalid_location=(400, "invalid_location", "Give latitude and longitude together, or neither."),
            invalid_year_built=(400, "invalid_year_built", "year_built (2090) is after 2027."),
            event_bus_unavailable=BUS_DOWN,
        ),
    },
)
async def analyze_property(
    body: AnalyzePropertyRequest,
    request: Request,
    caller: CallerDep,
    gw: GatewayDep,
    wait: float | None = WAIT_QUERY,
) -> Any:
    """Price a seller's home (a comparative market analysis). Stores the request and hands it
    to the seller analyzer: 202 with `result_url`. With `wait=N` the answer is 200 with the
    CMA as soon as the analyzer stored it, or still 202 after N seconds."""
    _check_home(body)
    payload = SellerAnalysisRequestedPayload(
        analysis_id=new_analysis_id(), seller_id=body.seller_id, property=body.home()
    )
    event = SellerAnalysisRequested(
        organization_id=caller.organization_id, correlation_id=request.state.request_id, payload=payload
    )
    message = event_message(event, topic=gw.topics(SELLER_ANALYSIS_REQUESTED), key=body.seller_id)

    await gw.sellers.open_analysis(
        accepting(gw, message), caller.organization_id, payload, request.state.request_id
    )
    analysis_id = payload.analysis_id
    accepted = AnalysisAccepted(
        analysis_id=analysis_id, seller_id=body.seller_id, result_url=f"/v1/sellers/analyses/{analysis_id}"
    )
    return await accepted_or_result(
        gw.results,
        SELLER_ANALYSIS,
        analysis_id,
        wait,
        accepted,
        lambda: gw.sellers.analysis(gw.pool, caller.organization_id, analysis_id),
    )


@router.get(
    "/v1/sellers/analyses/{analysis_id}",
    response_model=SellerAnalysisView,
    responses=documented_errors(
        not_found=(404, "analysis_not_found", "No seller analysis cma-… in your organisation.")
    ),
)
async def get_analysis(
    caller: CallerDep,
    gw: GatewayDep,
    analysis_id: str = _ANALYSIS_ID,
) -> SellerAnalysisView:
    """A seller analysis: `pending`, `completed` with its CMA, or `failed`."""
    view = await gw.sellers.analysis(gw.pool, caller.organization_id, analysis_id)
    if view is None:
        raise ApiError(404, "analysis_not_found", f"No seller analysis {analysis_id} in your organisation.")
    return view


@router.post(
    "/v1/sellers/{seller_id}/schedule-consultation",
    status_code=201,
    response_model=ConsultationView,
    responses=documented_errors(
        past_time=(400, "invalid_preferred_time", "preferred_times must be in the future; … is not."),
        event_bus_unavailable=BUS_DOWN,
    ),
)
async def schedule_consultation(
    body: ConsultationRequest,
    request: Request,
    caller: CallerDep,
    gw: GatewayDep,
    seller_id: str = _SELLER_ID,
) -> ConsultationView:
    """Ask for a consultation with the seller at one of their preferred times. 201 means the
    request is stored and on its way to the CRM, where the team books it."""
    now = datetime.now(UTC)
    past = [t for t in body.preferred_times if t <= now]
    if past:
        raise ApiError(
            400,
            "invalid_preferred_time",
            f"preferred_times must be in the future; {past[0].isoformat()} is not.",
        )
    payload = ConsultationRequestedPayload(
        consultation_id=new_consultation_id(), seller_id=seller_id, request=body
    )
    event = ConsultationRequested(
        organization_id=caller.organization_id, correlation_id=request.state.request_id, payload=payload
    )
    message = event_message(event, topic=gw.topics(SELLER_CONSULTATION_REQUESTED), key=seller_id)

    created_at = await gw.sellers.request_consultation(
        accepting(gw, message), caller.organization_id, payload, request.state.request_id
    )
    return ConsultationView(
        consultation_id=payload.consultation_id,
        seller_id=seller_id,
        preferred_times=body.preferred_times,
        created_at=created_at,
    )
