"""Gateway routes for /v1/leads: store a lead and its open qualification, hand it to the
qualifier, read the result.

The gateway never qualifies: it stores the request and stages LeadQualificationRequested in one
statement (publishing.accepting), then publishes it.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Request

from jorge_runtime.kafka.broker import event_message
from jorge_runtime.results import QUALIFICATION
from schemas.leads import (
    LEAD_ID_PATTERN,
    LeadQualificationRequested,
    LeadQualificationRequestedPayload,
    LeadToQualify,
    QualificationView,
    QualifyLeadAccepted,
    QualifyLeadRequest,
    new_qualification_id,
    schedule_showing_url,
)
from schemas.qualification import Qualification
from schemas.topics import LEAD_QUALIFICATION_REQUESTED
from services.gateway.dependencies import CallerDep, GatewayDep
from services.gateway.errors import API_ERRORS, ApiError
from services.gateway.lead_repository import LeadAlreadyInQualification
from services.gateway.publishing import accepting
from services.gateway.results import WAIT_QUERY

router = APIRouter()


@router.post(
    "/v1/leads/qualify",
    status_code=201,
    response_model=QualifyLeadAccepted,
    responses=API_ERRORS,
    tags=["leads"],
)
async def qualify_lead(
    body: QualifyLeadRequest,
    request: Request,
    caller: CallerDep,
    gw: GatewayDep,
    wait: float | None = WAIT_QUERY,
) -> QualifyLeadAccepted:
    """Start qualifying a lead. 201 means the lead and its event are stored for delivery (a
    retry with the same `Idempotency-Key` gets this answer again); read the result at
    `status_url`. With `wait=N` the answer waits up to N seconds for the qualification and,
    once it is stored, carries its `intent`, `temperature` and `next_action` (`status`
    completed); else they are null (`status` in_progress)."""
    qualification_id = new_qualification_id()
    event = LeadQualificationRequested(
        organization_id=caller.organization_id,
        correlation_id=request.state.request_id,
        payload=LeadQualificationRequestedPayload(
            qualification_id=qualification_id,
            lead=LeadToQualify.model_validate(body.model_dump()),
        ),
    )
    message = event_message(event, topic=gw.topics(LEAD_QUALIFICATION_REQUESTED), key=body.lead_id)

    try:
        opened = await gw.leads.open_qualification(
            accepting(gw, message),
            gw.pool,
            caller.organization_id,
            body,
            qualification_id,
            request.state.request_id,
        )
    except LeadAlreadyInQualification:
        raise ApiError(
            409,
            "lead_already_in_qualification",
            f"Lead {body.lead_id} already has a qualification in progress; "
            f"read it at /v1/leads/{body.lead_id}/qualification.",
        ) from None
    answer = QualifyLeadAccepted(
        qualification_id=qualification_id,
        lead_id=body.lead_id,
        schedule_showing_url=schedule_showing_url(opened.booking_url_template, body.lead_id),
        status_url=f"/v1/leads/{body.lead_id}/qualification",
        created_at=opened.created_at,
        expires_at=opened.expires_at,
    )
    if wait is None or await gw.results.wait(QUALIFICATION, qualification_id, wait) is None:
        return answer
    outcome = await gw.leads.outcome(gw.pool, caller.organization_id, qualification_id)
    result = Qualification.model_validate(outcome["result"]) if outcome["result"] else None
    return answer.model_copy(
        update={
            "status": outcome["status"],
            "intent": result.intent if result else None,
            "temperature": result.temperature if result else None,
            "next_action": result.next_action if result else None,
        }
    )


@router.get(
    "/v1/leads/{lead_id}/qualification",
    response_model=QualificationView,
    responses=API_ERRORS,
    tags=["leads"],
)
async def get_qualification(
    caller: CallerDep,
    gw: GatewayDep,
    lead_id: str = Path(pattern=LEAD_ID_PATTERN),
) -> QualificationView:
    """The lead's latest qualification: in progress, or completed with its result."""
    record = await gw.leads.latest_qualification(gw.pool, caller.organization_id, lead_id)
    if record is None:
        raise ApiError(404, "qualification_not_found", f"No qualification found for lead {lead_id}.")
    return QualificationView.model_validate(record)
