"""Follow-up cadence API models (/v1/leads/{lead_id}/follow-ups, /v1/leads/{lead_id}/events,
/v1/follow-ups/settings) and the follow-up events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import EventEnvelope
from schemas.text import Text

#: Days after qualification of one step: more than 0, at most a year.
CadenceDay = Annotated[float, Field(gt=0, le=365)]
#: One temperature's steps: 1 to 20 days after qualification.
Cadence = Annotated[list[CadenceDay], Field(min_length=1, max_length=20)]
PlanStatus = Literal["active", "paused", "stopped", "cancelled", "completed"]
StepStatus = Literal["pending", "done", "skipped", "cancelled", "failed"]
#: What a lead did that ends its cadence (the stop reason of a plan).
StopReason = Literal["replied", "booked", "won", "lost", "not_interested", "opted_out"]
#: What our own API accepts on POST /v1/leads/{lead_id}/events.
LeadEventType = Literal["replied", "booked", "not_interested"]
#: The GHL webhook types that can end a cadence (the gateway accepts and passes on these).
GHL_STOP_WEBHOOKS: tuple[str, ...] = (
    "InboundMessage",
    "AppointmentCreate",
    "OpportunityStatusUpdate",
    "ContactDndUpdate",
)


class FollowUpStepView(BaseModel):
    """One step of a plan: when it is due and what became of it."""

    step_number: int
    offset_days: float = Field(description="Days after qualification.")
    due_at: datetime
    status: StepStatus
    skip_reason: str | None = Field(default=None, description="too_late, or why it failed.")
    done_at: datetime | None = None
    ghl_task_id: str | None = None


class FollowUpPlanView(BaseModel):
    """A lead's follow-up plan: its steps, what was done and what stopped it."""

    lead_id: str
    status: PlanStatus
    stop_reason: str | None = Field(
        default=None, description="replied, booked, won, lost, not_interested, opted_out or cancelled."
    )
    temperature: str
    created_at: datetime
    updated_at: datetime
    steps: list[FollowUpStepView]


class UpdateFollowUpsRequest(BaseModel):
    """Body of PATCH /v1/leads/{lead_id}/follow-ups."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"action": "pause"}})

    action: Literal["pause", "resume", "cancel"]


class LeadEventRequest(BaseModel):
    """Body of POST /v1/leads/{lead_id}/events: something the lead did that ends its cadence."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"type": "replied"}})

    type: LeadEventType
    occurred_at: datetime | None = None


class LeadEventAccepted(BaseModel):
    """202 answer of POST /v1/leads/{lead_id}/events."""

    event_id: str
    lead_id: str
    type: LeadEventType


class FollowUpSettingsBody(BaseModel):
    """An organisation's cadence (PUT and GET /v1/follow-ups/settings)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "cadence_days": {"default": [3, 7, 30], "hot": [1, 3, 7]},
                "time_zone": "America/Los_Angeles",
                "quiet_hours": {"start_hour": 21, "end_hour": 8},
                "workflow_id": None,
                "skip_late_after_days": 1,
            }
        },
    )

    cadence_days: dict[Literal["default", "hot", "warm", "cold"], Cadence] = Field(
        description="Days after qualification of each step, per temperature; `default` for the others."
    )
    time_zone: Text = Field(default="UTC", max_length=64, description="IANA zone of the quiet hours.")
    quiet_hours: QuietHours | None = None
    workflow_id: Text | None = Field(
        default=None, min_length=1, max_length=64, description="GHL workflow of each step."
    )
    skip_late_after_days: float = Field(
        default=1, gt=0, le=30, description="A step later than this (the platform was down) is skipped."
    )


class QuietHours(BaseModel):
    """Hours of the organisation's day when no step is sent: [start_hour, end_hour), may wrap midnight."""

    start_hour: int = Field(ge=0, le=23, strict=True)  # strict: JSON's false is not hour 0
    end_hour: int = Field(ge=0, le=23, strict=True)


FollowUpSettingsBody.model_rebuild()


# --- events ----------------------------------------------------------------------------------


class LeadEngagementRecordedPayload(BaseModel):
    """What the lead did, as our API or GHL's webhook said it (crm_sync decides what it stops)."""

    source: Literal["api", "ghl"]
    lead_id: str | None = Field(default=None, description="Set by our API; GHL names a contact instead.")
    event: str = Field(description="replied, booked, not_interested (api) or GHL's webhook type.")
    ghl_location_id: str | None = None
    ghl_contact_id: str | None = None
    ghl_webhook_id: str | None = None
    ghl_status: str | None = Field(default=None, description="OpportunityStatusUpdate's status.")
    ghl_direction: str | None = Field(default=None, description="InboundMessage's direction.")
    ghl_dnd: bool | None = Field(default=None, description="ContactDndUpdate's dnd.")


class LeadEngagementRecorded(EventEnvelope):
    """A lead replied, booked, said no or opted out (keyed by lead or GHL contact id)."""

    EVENT_TYPE: ClassVar[str] = "lead.engagement_recorded"
    event_type: Literal["lead.engagement_recorded"] = "lead.engagement_recorded"
    schema_version: Literal[1] = 1
    payload: LeadEngagementRecordedPayload


class LeadFollowUpDuePayload(BaseModel):
    """A follow-up step carried out: the GHL task created and the workflow the contact joined."""

    lead_id: str
    step_number: int
    steps_total: int
    offset_days: float
    due_at: datetime
    temperature: str
    ghl_contact_id: str
    ghl_task_id: str
    ghl_workflow_id: str | None = None


class LeadFollowUpDue(EventEnvelope):
    """A lead's follow-up step fell due and was carried out (keyed by lead id)."""

    EVENT_TYPE: ClassVar[str] = "lead.follow_up_due"
    event_type: Literal["lead.follow_up_due"] = "lead.follow_up_due"
    schema_version: Literal[1] = 1
    payload: LeadFollowUpDuePayload
