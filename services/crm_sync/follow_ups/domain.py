"""Cadence, quiet-hours and stop-signal rules of follow-ups, with no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from schemas.follow_ups import LeadEngagementRecordedPayload, StopReason

REAL_DAY_SECONDS = 86_400.0
#: Every task and webhook of a step carries this line, so a step whose outcome was lost (a crash,
#: a timeout) finds its task in GHL instead of creating a second one.
MARKER_PREFIX = "ref jorge-follow-up:"


def parse_cadence(text: str) -> tuple[float, ...]:
    """``"3,7,30"`` -> (3.0, 7.0, 30.0); sorted, no duplicates, every day > 0."""
    days = sorted({float(part) for part in text.split(",") if part.strip()})
    if not days or days[0] <= 0:
        raise ValueError(f"a cadence needs days after qualification above 0, got {text!r}")
    return tuple(days)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """[start_hour, end_hour) of the organisation's local day; wraps midnight when start > end."""

    start_hour: int
    end_hour: int

    def contains(self, hour: int) -> bool:
        if self.start_hour == self.end_hour:
            return False
        if self.start_hour < self.end_hour:
            return self.start_hour <= hour < self.end_hour
        return hour >= self.start_hour or hour < self.end_hour


@dataclass(frozen=True, slots=True)
class Cadence:
    """An organisation's follow-up settings, as the engine uses them."""

    days: dict[str, tuple[float, ...]] = field(default_factory=lambda: {"default": (3.0, 7.0, 30.0)})
    time_zone: str = "UTC"
    quiet: QuietHours | None = None
    workflow_id: str | None = None
    skip_late_after_days: float = 1.0

    def offsets(self, temperature: str) -> tuple[float, ...]:
        """The step offsets (days) of a lead of this temperature."""
        return self.days.get(temperature) or self.days.get("default") or (3.0, 7.0, 30.0)

    @classmethod
    def from_row(cls, row: dict[str, Any] | None, default_days: tuple[float, ...]) -> Cadence:
        """The cadence stored for an organisation (follow_up_settings), or the default."""
        if row is None:
            return cls(days={"default": default_days})
        days = {k: tuple(sorted(float(d) for d in v)) for k, v in dict(row["cadence_days"]).items() if v}
        days.setdefault("default", default_days)
        start, end = row.get("quiet_start_hour"), row.get("quiet_end_hour")
        return cls(
            days=days,
            time_zone=str(row.get("time_zone") or "UTC"),
            quiet=QuietHours(int(start), int(end)) if start is not None and end is not None else None,
            workflow_id=row.get("workflow_id"),
            skip_late_after_days=float(row.get("skip_late_after_days") or 1.0),
        )


def after_quiet_hours(at: datetime, cadence: Cadence, day_seconds: float) -> datetime:
    """``at``, or the end of the quiet hours it falls in (organisation's zone). Scaled days (tests)
    have no night: quiet hours apply only when a day is a real day."""
    if cadence.quiet is None or day_seconds != REAL_DAY_SECONDS:
        return at
    local = at.astimezone(ZoneInfo(cadence.time_zone))
    if not cadence.quiet.contains(local.hour):
        return at
    end = local.replace(hour=cadence.quiet.end_hour, minute=0, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end.astimezone(at.tzinfo)


def due_times(
    start: datetime, offsets: tuple[float, ...], cadence: Cadence, day_seconds: float
) -> list[datetime]:
    """When each step is due: ``start`` plus its offset in days, moved past quiet hours."""
    return [
        after_quiet_hours(start + timedelta(seconds=offset * day_seconds), cadence, day_seconds)
        for offset in offsets
    ]


StepVerdict = Literal["run", "too_late", "quiet"]


def verdict(due_at: datetime, now: datetime, cadence: Cadence, day_seconds: float) -> StepVerdict:
    """What to do with a claimed step now: run it, skip it (it fell due long ago, while the
    platform was down, and would make no sense now), or wait for the quiet hours to end."""
    if (now - due_at).total_seconds() > cadence.skip_late_after_days * day_seconds:
        return "too_late"
    if after_quiet_hours(now, cadence, day_seconds) > now:
        return "quiet"
    return "run"


def stop_reason(signal: LeadEngagementRecordedPayload) -> StopReason | None:
    """The reason a signal stops a cadence, or None when it says nothing that stops it (an
    outbound message, an open opportunity, DND turned off)."""
    if signal.source == "api":
        return signal.event if signal.event in ("replied", "booked", "not_interested") else None  # type: ignore[return-value]
    if signal.event == "InboundMessage":
        return "replied" if (signal.ghl_direction or "inbound") == "inbound" else None
    if signal.event == "AppointmentCreate":
        return "booked"
    if signal.event == "OpportunityStatusUpdate":
        return {"won": "won", "lost": "lost", "abandoned": "not_interested"}.get(  # type: ignore[return-value]
            (signal.ghl_status or "").lower()
        )
    if signal.event == "ContactDndUpdate":
        return "opted_out" if signal.ghl_dnd else None
    return None


def marker(step_id: str) -> str:
    """The line that identifies a step's task in GHL."""
    return f"{MARKER_PREFIX}{step_id}"


def task_fields(
    lead_id: str, step_number: int, steps_total: int, due_at: datetime, step_id: str
) -> dict[str, Any]:
    """GHL's CreateTaskParams of a step (title, body with the marker, dueDate, completed)."""
    return {
        "title": f"Follow up with lead {lead_id} (step {step_number} of {steps_total})",
        "body": f"Follow-up step {step_number} of {steps_total}: contact the lead.\n{marker(step_id)}",
        "dueDate": due_at.isoformat().replace("+00:00", "Z"),
        "completed": False,
    }
