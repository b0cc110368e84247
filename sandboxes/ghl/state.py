"""The sandbox's in-memory CRM, its rate limits and the faults it injects (no HTTP here)."""

from __future__ import annotations

import math
import random
import time
import uuid
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _new_id() -> str:
    return uuid.uuid4().hex[:20]


@dataclass
class Limits:
    """Per-location (per-token) limits, as GHL advertises them in X-RateLimit-* headers."""

    burst: int = 100
    interval_ms: int = 10_000
    daily: int = 200_000
    #: Length of the daily window: a token's first request opens one, and the first request
    #: after it closes opens the next (a rolling day, not the UTC day).
    daily_reset_ms: int = 86_400_000
    #: Send ``x-ratelimit-daily-reset`` (ms until the daily window closes); off: answers without
    #: it, like the GHL answers its documentation describes.
    daily_reset_header: bool = True


@dataclass
class Faults:
    """Injected failures. Counts apply to the next N API requests; rates to each request."""

    storm_429: int = 0
    burst_5xx: int = 0
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    slow_ms: int = 0
    slow_rate: float = 0.0
    upsert_422_created: int = 0
    rate_422_created: float = 0.0
    #: Permanent rejections: any API request whose path, query or body contains a marker
    #: (e.g. an email) is answered with its status (400, 403, 404, or 422 without creating).
    reject: dict[str, int] = field(default_factory=dict)
    #: A timeout that still wrote: the next ``late_answers`` requests whose "METHOD path"
    #: contains ``late_path`` are carried out, then answered ``late_ms`` late.
    late_ms: int = 0
    late_answers: int = 0
    late_path: str = ""


@dataclass
class Verdict:
    """What the gate decided for one request: go on, or answer with this status and body."""

    status: int | None
    body: dict[str, Any] | None
    headers: dict[str, str]
    delay_ms: int = 0
    created_then_422: bool = False
    late_ms: int = 0


@dataclass
class Contact:
    id: str
    locationId: str
    firstName: str | None = None
    lastName: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    source: str | None = None
    address1: str | None = None
    tags: list[str] = field(default_factory=list)
    customFields: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    dateAdded: str = field(default_factory=_now_iso)


def _rejection(status: int) -> dict[str, Any]:
    """GHL's body for a permanent rejection with this status."""
    if status == 422:
        return {"statusCode": 422, "message": ["email must be an email"], "error": "Unprocessable Entity"}
    messages = {
        400: "Bad Request",
        403: "The token does not have access to this location.",
        404: "Contact not found",
    }
    return {"statusCode": status, "message": messages.get(status, "Rejected")}


CONTACT_FIELDS = ("firstName", "lastName", "name", "email", "phone", "source", "address1")


class SandboxState:
    """Everything the sandbox knows; one event loop uses it, so no locks are needed."""

    def __init__(self, limits: Limits | None = None, faults: Faults | None = None, seed: int = 7) -> None:
        self.limits = limits or Limits()
        self.faults = faults or Faults()
        self.random = random.Random(seed)  # noqa: S311  not for security: jitter or seeded demo data
        self.revoked: set[str] = set()
        self.contacts: dict[str, Contact] = {}
        self.opportunities: dict[str, dict[str, Any]] = {}
        self._windows: dict[str, deque[float]] = {}
        self._daily: Counter[str] = Counter()
        #: When (monotonic seconds) each token's daily window closes.
        self._daily_end: dict[str, float] = {}
        self.stats: Counter[str] = Counter()
        #: Arrival (epoch seconds) of every request the limits let through, for benchmarks.
        self.accepted_at: list[float] = []

    # --- the gate every API call goes through ----------------------------------------------
    def gate(self, token: str | None, version: str | None, call: str = "", content: str = "") -> Verdict:
        """Authenticate, count against the token's limits, inject faults. ``call`` ("METHOD
        /path") and ``content`` (query and body as text) let faults target some calls."""
        self.stats["requests"] += 1
        if not token or token in self.revoked:
            self.stats["unauthorized"] += 1
            return Verdict(401, {"statusCode": 401, "message": "Invalid JWT"}, {})
        if not version:
            return Verdict(400, {"statusCode": 400, "message": "Version header was not found"}, {})
        window = self._windows.setdefault(token, deque())
        now = time.monotonic()
        horizon = now - self.limits.interval_ms / 1000
        while window and window[0] <= horizon:
            window.popleft()
        if now >= self._daily_end.get(token, now):
            self._daily[token] = 0
            self._daily_end[token] = now + self.limits.daily_reset_ms / 1000
        if len(window) >= self.limits.burst or self._daily[token] >= self.limits.daily:
            self.stats["rate_limited"] += 1
            return Verdict(
                429, {"statusCode": 429, "message": "Too Many Requests"}, self._headers(token, now)
            )
        window.append(now)
        self._daily[token] += 1
        self.accepted_at.append(time.time())
        headers = self._headers(token, now)
        faults = self.faults
        if faults.storm_429 > 0 or (faults.rate_429 and self.random.random() < faults.rate_429):
            faults.storm_429 = max(0, faults.storm_429 - 1)
            self.stats["injected_429"] += 1
            return Verdict(429, {"statusCode": 429, "message": "Too Many Requests"}, headers)
        if faults.burst_5xx > 0 or (faults.rate_5xx and self.random.random() < faults.rate_5xx):
            faults.burst_5xx = max(0, faults.burst_5xx - 1)
            self.stats["injected_5xx"] += 1
            status = self.random.choice((500, 502, 503))
            return Verdict(status, {"statusCode": status, "message": "Internal Server Error"}, headers)
        text = f"{call} {content}"
        if rejected := next((status for mark, status in faults.reject.items() if mark in text), None):
            self.stats["injected_rejected"] += 1
            return Verdict(rejected, _rejection(rejected), headers)
        late = 0
        if faults.late_answers > 0 and faults.late_path in call:
            faults.late_answers -= 1
            self.stats["injected_late"] += 1
            late = faults.late_ms
        delay = faults.slow_ms if faults.slow_rate and self.random.random() < faults.slow_rate else 0
        created_then_422 = faults.upsert_422_created > 0 or (
            faults.rate_422_created > 0 and self.random.random() < faults.rate_422_created
        )
        return Verdict(None, None, headers, delay_ms=delay, created_then_422=created_then_422, late_ms=late)

    def _headers(self, token: str, now: float) -> dict[str, str]:
        remaining = max(0, self.limits.burst - len(self._windows.get(token, ())))
        headers = {
            "x-ratelimit-max": str(self.limits.burst),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-interval-milliseconds": str(self.limits.interval_ms),
            "x-ratelimit-limit-daily": str(self.limits.daily),
            "x-ratelimit-daily-remaining": str(max(0, self.limits.daily - self._daily[token])),
        }
        if self.limits.daily_reset_header:
            # Rounded up: a client resuming after this many ms finds the window closed. Rounded
            # to a microsecond first, so float error (100.00000000001 ms) does not add a whole ms.
            left_ms = math.ceil(round((self._daily_end[token] - now) * 1000, 3))
            headers["x-ratelimit-daily-reset"] = str(max(0, left_ms))
        return headers

    # --- contacts ---------------------------------------------------------------------------
    def find_duplicate(self, location_id: str, email: str | None, phone: str | None) -> Contact | None:
        """GHL's duplicate rule: email first, then phone, within the location."""
        email = (email or "").lower() or None
        for contact in self.contacts.values():
            if contact.locationId == location_id and email and (contact.email or "").lower() == email:
                return contact
        for contact in self.contacts.values():
            if contact.locationId == location_id and phone and contact.phone == phone:
                return contact
        return None

    def upsert_contact(self, body: dict[str, Any]) -> tuple[Contact, bool]:
        """Create or update by the duplicate rule. ``tags`` REPLACE the contact's tags, as in GHL."""
        location_id = str(body["locationId"])
        existing = self.find_duplicate(location_id, body.get("email"), body.get("phone"))
        contact = existing or Contact(id=_new_id(), locationId=location_id)
        for name in CONTACT_FIELDS:
            if body.get(name) is None:
                continue
            if name == "phone" and existing and existing.phone and body.get("email"):
                continue  # matched by email: GHL silently keeps the old phone
            setattr(contact, name, body[name])
        if "tags" in body:
            contact.tags = list(dict.fromkeys(body["tags"] or []))
        if body.get("customFields"):
            contact.customFields = list(body["customFields"])
        self.contacts[contact.id] = contact
        self.stats["contacts_created" if existing is None else "contacts_updated"] += 1
        return contact, existing is None

    def update_contact(self, contact: Contact, body: dict[str, Any]) -> Contact:
        """PUT /contacts/{id}: the fields given; ``tags`` replace; custom fields merge by id/key."""
        for name in CONTACT_FIELDS:
            if body.get(name) is not None:
                setattr(contact, name, body[name])
        if "tags" in body:
            contact.tags = list(dict.fromkeys(body["tags"] or []))
        for custom in body.get("customFields") or []:
            ref = custom.get("id") or custom.get("key")
            kept = [c for c in contact.customFields if (c.get("id") or c.get("key")) != ref]
            contact.customFields = [*kept, custom]
        self.stats["contacts_put"] += 1
        return contact

    def add_tags(self, contact: Contact, tags: list[str]) -> list[str]:
        contact.tags = list(dict.fromkeys([*contact.tags, *tags]))
        return contact.tags

    def add_note(self, contact: Contact, body: str, user_id: str | None) -> dict[str, Any]:
        note = {
            "id": _new_id(),
            "body": body,
            "userId": user_id,
            "contactId": contact.id,
            "dateAdded": _now_iso(),
        }
        contact.notes.append(note)
        self.stats["notes_created"] += 1
        return note

    # --- opportunities ----------------------------------------------------------------------
    def create_opportunity(self, body: dict[str, Any]) -> dict[str, Any]:
        opportunity = {
            "id": _new_id(),
            "name": body["name"],
            "pipelineId": body["pipelineId"],
            "pipelineStageId": body.get("pipelineStageId"),
            "status": body["status"],
            "monetaryValue": body.get("monetaryValue"),
            "contactId": body["contactId"],
            "locationId": body["locationId"],
            "createdAt": _now_iso(),
        }
        self.opportunities[opportunity["id"]] = opportunity
        self.stats["opportunities_created"] += 1
        return opportunity

    def upsert_opportunity(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Matched by contact and pipeline, like GHL's opportunity upsert."""
        for opportunity in self.opportunities.values():
            if (
                opportunity["contactId"] == body["contactId"]
                and opportunity["pipelineId"] == body["pipelineId"]
            ):
                for name in ("name", "pipelineStageId", "status", "monetaryValue"):
                    if body.get(name) is not None:
                        opportunity[name] = body[name]
                return opportunity, False
        return self.create_opportunity(body), True

    def search_opportunities(self, contact_id: str | None, pipeline_id: str | None) -> list[dict[str, Any]]:
        return [
            o
            for o in self.opportunities.values()
            if (contact_id is None or o["contactId"] == contact_id)
            and (pipeline_id is None or o["pipelineId"] == pipeline_id)
        ]

    # --- the listing a new user reads ----------------------------------------------------------
    def listing(self, location_id: str | None = None) -> list[dict[str, Any]]:
        """Every contact with its tags, notes and opportunities, newest last."""
        out = []
        for contact in self.contacts.values():
            if location_id and contact.locationId != location_id:
                continue
            entry = asdict(contact)
            entry["opportunities"] = self.search_opportunities(contact.id, None)
            out.append(entry)
        return out
