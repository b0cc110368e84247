"""Follow-up routes: read a lead's plan, pause/resume/cancel it, record what the lead did, and
the organisation's cadence. The engine is crm_sync's; these read and write its plan state."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Path, Request

from jorge_runtime.db import DbConnection
from jorge_runtime.kafka.broker import event_message
from schemas.follow_ups import (
    FollowUpPlanView,
    FollowUpSettingsBody,
    LeadEngagementRecorded,
    LeadEngagementRecordedPayload,
    LeadEventAccepted,
    LeadEventRequest,
    QuietHours,
    UpdateFollowUpsRequest,
)
from schemas.leads import LEAD_ID_PATTERN
from schemas.topics import LEAD_ENGAGEMENT_RECORDED
from services.gateway.dependencies import Gateway, authenticated_caller, gateway
from services.gateway.errors import API_ERRORS, ApiError
from services.gateway.outbox import EVENT_ONLY
from services.gateway.publishing import accepting
from services.gateway.tenancy import Caller

router = APIRouter(tags=["follow-ups"])

#: PATCH action -> (statuses it applies to, the status it sets).
_TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "pause": (("active",), "paused"),
    "resume": (("paused",), "active"),
    "cancel": (("active", "paused"), "cancelled"),
}


async def _plan(conn: DbConnection, organization_id: str, lead_id: str) -> FollowUpPlanView | None:
    plan = await conn.fetchrow(
        "SELECT * FROM follow_up_plans WHERE organization_id = $1 AND lead_id = $2", organization_id, lead_id
    )
    if plan is None:
        return None
    steps = await conn.fetch(
        """SELECT step_number, offset_days, due_at, status, skip_reason, done_at, task_id AS ghl_task_id
             FROM follow_up_steps WHERE organization_id = $1 AND lead_id = $2 ORDER BY step_number""",
        organization_id,
        lead_id,
    )
    return FollowUpPlanView.model_validate({**dict(plan), "steps": [dict(s) for s in steps]})


def _not_found(lead_id: str) -> ApiError:
    return ApiError(
        404,
        "follow_up_plan_not_found",
        f"Lead {lead_id} has no follow-up plan (plans start when a lead is qualified).",
    )


@router.get("/v1/leads/{lead_id}/follow-ups", response_model=FollowUpPlanView, responses=API_ERRORS)
async def get_follow_ups(
    lead_id: str = Path(pattern=LEAD_ID_PATTERN),
    caller: Caller = Depends(authenticated_caller),
    gw: Gateway = Depends(gateway),
) -> FollowUpPlanView:
    """The lead's follow-up plan: each step's due time and outcome, and what stopped it."""
    async with gw.pool.acquire() as conn:
        plan = await _plan(conn, caller.organization_id, lead_id)
    if plan is None:
        raise _not_found(lead_id)
    return plan


@router.patch("/v1/leads/{lead_id}/follow-ups", response_model=FollowUpPlanView, responses=API_ERRORS)
async def update_follow_ups(
    body: UpdateFollowUpsRequest,
    lead_id: str = Path(pattern=LEAD_ID_PATTERN),
    caller: Caller = Depends(authenticated_caller),
    gw: Gateway = Depends(gateway),
) -> FollowUpPlanView:
    """Pause, resume or cancel the lead's plan. A resumed plan's steps that fell due while it was
    paused run at once, or are skipped when later than the organisation's skip limit."""
    applies_to, new_status = _TRANSITIONS[body.action]
    org = caller.organization_id
    async with gw.pool.acquire() as conn, conn.transaction():
        status = await conn.fetchval(
            "SELECT status FROM follow_up_plans WHERE organization_id = $1 AND lead_id = $2 FOR UPDATE",
            org,
            lead_id,
        )
        if status is None:
            raise _not_found(lead_id)
        if status not in applies_to:
            raise ApiError(
                409, "follow_up_plan_not_changeable", f"The plan is {status}; {body.action} applies to "
                f"{' or '.join(applies_to)} plans."
            )  # fmt: skip
        await conn.execute(
            """UPDATE follow_up_plans SET status = $3, updated_at = now(),
                      stop_reason = CASE WHEN $3 = 'cancelled' THEN 'cancelled' ELSE stop_reason END
                WHERE organization_id = $1 AND lead_id = $2""",
            org,
            lead_id,
            new_status,
        )
        if new_status == "cancelled":
            await conn.execute(
                """UPDATE follow_up_steps SET status = 'cancelled', lease_expires_at = NULL
                    WHERE organization_id = $1 AND lead_id = $2 AND status = 'pending'""",
                org,
                lead_id,
            )
        plan = await _plan(conn, org, lead_id)
    assert plan is not None
    return plan


@router.post(
    "/v1/leads/{lead_id}/events", status_code=202, response_model=LeadEventAccepted, responses=API_ERRORS
)
async def record_lead_event(
    body: LeadEventRequest,
    request: Request,
    lead_id: str = Path(pattern=LEAD_ID_PATTERN),
    caller: Caller = Depends(authenticated_caller),
    gw: Gateway = Depends(gateway),
) -> LeadEventAccepted:
    """Record that the lead replied, booked or is not interested: its follow-up cadence stops
    (`GET /v1/leads/{lead_id}/follow-ups` shows the reason once crm_sync has read it)."""
    event = LeadEngagementRecorded(
        organization_id=caller.organization_id,
        correlation_id=request.state.request_id,
        **({"occurred_at": body.occurred_at} if body.occurred_at else {}),
        payload=LeadEngagementRecordedPayload(source="api", lead_id=lead_id, event=body.type),
    )
    message = event_message(event, topic=gw.topics(LEAD_ENGAGEMENT_RECORDED), key=lead_id)

    await accepting(gw, message)(EVENT_ONLY)  # the event is the whole record: crm_sync stops the plan
    return LeadEventAccepted(event_id=str(event.event_id), lead_id=lead_id, type=body.type)


@router.get("/v1/follow-ups/settings", response_model=FollowUpSettingsBody, responses=API_ERRORS)
async def get_follow_up_settings(
    caller: Caller = Depends(authenticated_caller), gw: Gateway = Depends(gateway)
) -> FollowUpSettingsBody:
    """The organisation's cadence (the platform's default, FOLLOW_UP_CADENCE_DAYS, until set)."""
    row = await gw.pool.fetchrow(
        "SELECT * FROM follow_up_settings WHERE organization_id = $1", caller.organization_id
    )
    if row is None:
        days = [float(d) for d in gw.settings.follow_up_cadence_days.split(",") if d.strip()]
        return FollowUpSettingsBody(cadence_days={"default": days})
    quiet = (
        QuietHours(start_hour=row["quiet_start_hour"], end_hour=row["quiet_end_hour"])
        if row["quiet_start_hour"] is not None and row["quiet_end_hour"] is not None
        else None
    )
    return FollowUpSettingsBody(
        cadence_days=row["cadence_days"],
        time_zone=row["time_zone"],
        quiet_hours=quiet,
        workflow_id=row["workflow_id"],
        skip_late_after_days=row["skip_late_after_days"],
    )


@router.put("/v1/follow-ups/settings", response_model=FollowUpSettingsBody, responses=API_ERRORS)
async def put_follow_up_settings(
    body: FollowUpSettingsBody, caller: Caller = Depends(authenticated_caller), gw: Gateway = Depends(gateway)
) -> FollowUpSettingsBody:
    """Set the organisation's cadence; plans scheduled from now on follow it."""
    try:
        ZoneInfo(body.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(
            422, "validation_error", f"Unknown time zone {body.time_zone!r} (IANA names)."
        ) from None
    quiet = body.quiet_hours
    await gw.pool.execute(
        """INSERT INTO follow_up_settings (organization_id, cadence_days, time_zone, quiet_start_hour,
                                           quiet_end_hour, workflow_id, skip_late_after_days)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (organization_id) DO UPDATE SET cadence_days = $2, time_zone = $3,
               quiet_start_hour = $4, quiet_end_hour = $5, workflow_id = $6, skip_late_after_days = $7,
               updated_at = now()""",
        caller.organization_id,
        body.cadence_days,
        body.time_zone,
        quiet.start_hour if quiet else None,
        quiet.end_hour if quiet else None,
        body.workflow_id,
        body.skip_late_after_days,
    )
    return body
