"""The sandbox's in-memory CRM, its rate limits and the faults it injects (no HTTP here)."""

from __future__ import annotations

import bisect
import math
import random
import time
import uuid
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandboxes.ghl.contract import Problem

#: What the sandbox keeps on a contact that GHL answers through other routes.
_NOT_IN_CONTACT = ("notes", "tasks", "workflows")


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
    #: A fault (reported by one client, not in GHL's docs): send ``x-ratelimit-daily-reset`` (ms
    #: until the daily window closes). Off by default, like the answers GHL documents.
    daily_reset_header: bool = False


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
    #: Reported by users, not in the spec (GHL docs issue #64): upserts that create the contact
    #: but answer 422 are ``upsert_422_created`` / ``rate_422_created`` above.
    #: Reported by users (#37): with ``upsert_drops_phone``, an upsert matched by email keeps the
    #: contact's old phone even when no other contact owns the new one.
    upsert_drops_phone: bool = False


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
    tasks: list[dict[str, Any]] = field(default_factory=list)
    workflows: list[dict[str, Any]] = field(default_factory=list)
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
        #: Tokens answered 401 "expired" (an OAuth access token past its day).
        self.expired: set[str] = set()
        #: Scopes granted per token; a token not listed has every scope.
        self.scopes: dict[str, set[str]] = {}
        #: The location a token belongs to: limits are per location, shared by its tokens.
        self.token_locations: dict[str, str] = {}
        #: Contact custom fields per location, as GET /locations/{id}/customFields lists them.
        self.custom_fields: dict[str, list[dict[str, Any]]] = {}
        #: OAuth: client id -> secret, refresh token -> (location, scopes), access token expiry.
        self.oauth_clients: dict[str, str] = {}
        self.refresh_tokens: dict[str, tuple[str, set[str] | None]] = {}
        self.access_expiry: dict[str, float] = {}
        self.oauth_expires_in: float = 86_399
        #: Limits of some locations (keyed like the windows: location, else token).
        self.location_limits: dict[str, Limits] = {}
        #: Arrival (epoch seconds) of the requests let through, per location (or token).
        self.accepted_by: dict[str, list[float]] = {}
        #: Answers that broke the spec's response schema (must stay empty).
        self.violations: list[str] = []
        #: Requests refused because GHL's spec refuses them, and why (must stay empty too).
        self.refused: list[str] = []
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
    def gate(
        self,
        token: str | None,
        call: str = "",
        content: str = "",
        *,
        scopes: tuple[str, ...] = (),
        problem: Problem | None = None,
        arrived: float | None = None,
    ) -> Verdict:
        """Authenticate, check the token's scopes, count against the location's limits, inject
        faults, then refuse what the spec refuses (``problem``). ``call`` ("METHOD /path") and
        ``content`` (query and body as text) let faults target some calls. ``arrived``
        (time.monotonic()) is when the request reached the sandbox: the limits count it then, as
        GHL's throttle does before it reads and validates a body, so the sandbox's own work on a
        loaded machine does not move a request into a later window."""
        self.stats["requests"] += 1
        if token and self.access_expiry.get(token, math.inf) <= time.monotonic():
            self.expired.add(token)
        if not token or token in self.revoked or token in self.expired:
            self.stats["unauthorized"] += 1
            message = "Invalid JWT" if token not in self.expired else "Invalid token: access token is expired"
            return Verdict(401, {"statusCode": 401, "message": message, "error": "Unauthorized"}, {})
        granted = self.scopes.get(token)
        if granted is not None and scopes and not set(scopes) & granted:
            self.stats["unauthorized_scope"] += 1
            message = "The token is not authorized for this scope."
            return Verdict(401, {"statusCode": 401, "message": message, "error": "Unauthorized"}, {})
        if problem is not None and problem.status == 400:
            return Verdict(400, self.refuse(call, problem), {})
        # Limits are per app per location: every token of the location shares them.
        key = self.token_locations.get(token, token)
        window = self._windows.setdefault(key, deque())
        clock = time.monotonic()
        now = min(arrived, clock) if arrived is not None else clock
        epoch = time.time() - (clock - now)
        limits = self.limits_of(key)
        horizon = now - limits.interval_ms / 1000
        while window and window[0] <= horizon:
            window.popleft()
        if now >= self._daily_end.get(key, now):
            self._daily[key] = 0
            self._daily_end[key] = now + limits.daily_reset_ms / 1000
        if len(window) >= limits.burst or self._daily[key] >= limits.daily:
            self.stats["rate_limited"] += 1
            self.stats[f"rate_limited:{key}"] += 1
            return Verdict(429, {"statusCode": 429, "message": "Too Many Requests"}, self._headers(key, now))
        # Requests are gated in about the order they arrived, not exactly: keep the window sorted.
        bisect.insort(window, now)
        self._daily[key] += 1
        self.accepted_at.append(epoch)
        self.accepted_by.setdefault(key, []).append(epoch)
        headers = self._headers(key, now)
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
        if problem is not None:
            return Verdict(problem.status, self.refuse(call, problem), headers)
        return Verdict(None, None, headers, delay_ms=delay, created_then_422=created_then_422, late_ms=late)

    def refuse(self, call: str, problem: Problem) -> dict[str, Any]:
        """Count and record a request the spec refuses; GHL's answer to it."""
        self.stats["contract_refused"] += 1
        self.refused.append(f"{call} {problem.status}: {'; '.join(problem.messages)}")
        return problem.body()

    def limits_of(self, key: str) -> Limits:
        """The limits of a location (or of a token without a known location)."""
        return self.location_limits.get(key, self.limits)

    def _headers(self, token: str, now: float) -> dict[str, str]:
        limits = self.limits_of(token)
        remaining = max(0, limits.burst - len(self._windows.get(token, ())))
        headers = {
            "x-ratelimit-max": str(limits.burst),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-interval-milliseconds": str(limits.interval_ms),
            "x-ratelimit-limit-daily": str(limits.daily),
            "x-ratelimit-daily-remaining": str(max(0, limits.daily - self._daily[token])),
        }
        if limits.daily_reset_header:
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
            if name == "phone" and existing and self._phone_kept(existing, body):
                continue  # GHL silently keeps the old phone (see _phone_kept)
            setattr(contact, name, body[name])
        if "tags" in body:
            contact.tags = list(dict.fromkeys(body["tags"] or []))
        if body.get("customFields"):
            contact.customFields = list(body["customFields"])
        self.contacts[contact.id] = contact
        self.stats["contacts_created" if existing is None else "contacts_updated"] += 1
        return contact, existing is None

    def _phone_kept(self, existing: Contact, body: dict[str, Any]) -> bool:
        """GHL ignores the second identifier when it belongs to another contact (the spec's own
        words); the ``upsert_drops_phone`` fault drops it whenever the email matched (#37)."""
        if existing.phone == body.get("phone") or not body.get("email"):
            return False
        if self.faults.upsert_drops_phone and existing.phone:
            return True
        return any(
            c.phone == body["phone"] and c.id != existing.id and c.locationId == existing.locationId
            for c in self.contacts.values()
        )

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
        note = {"id": _new_id(), "body": body, "contactId": contact.id, "dateAdded": _now_iso()}
        if user_id:
            note["userId"] = user_id
        contact.notes.append(note)
        self.stats["notes_created"] += 1
        return note

    def add_task(self, contact: Contact, body: dict[str, Any]) -> dict[str, Any]:
        task = {
            "id": _new_id(),
            "title": str(body["title"]),
            "body": str(body.get("body", "")),
            "dueDate": str(body["dueDate"]),
            "completed": bool(body.get("completed", False)),
            "contactId": contact.id,
        }
        contact.tasks.append(task)
        self.stats["tasks_created"] += 1
        return task

    def add_to_workflow(self, contact: Contact, workflow_id: str) -> None:
        contact.workflows.append({"workflowId": workflow_id, "addedAt": _now_iso()})
        self.stats["workflow_enrolments"] += 1

    # --- opportunities ----------------------------------------------------------------------
    def create_opportunity(self, body: dict[str, Any]) -> dict[str, Any]:
        opportunity = {
            "id": _new_id(),
            "name": body.get("name"),
            "pipelineId": body["pipelineId"],
            "pipelineStageId": body.get("pipelineStageId"),
            "status": body.get("status", "open"),
            "monetaryValue": body.get("monetaryValue"),
            "contactId": body.get("contactId"),
            "locationId": body["locationId"],
            "createdAt": _now_iso(),
        }
        opportunity = {k: v for k, v in opportunity.items() if v is not None}
        self.opportunities[opportunity["id"]] = opportunity
        self.stats["opportunities_created"] += 1
        return opportunity

    def update_opportunity(self, opportunity: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """PUT /opportunities/{id} (and the upsert matched on ``id``): the fields given."""
        for name in ("name", "pipelineId", "pipelineStageId", "status", "monetaryValue", "assignedTo"):
            if body.get(name) is not None:
                opportunity[name] = body[name]
        opportunity["updatedAt"] = _now_iso()
        self.stats["opportunities_updated"] += 1
        return opportunity

    def search_opportunities(self, contact_id: str | None, pipeline_id: str | None) -> list[dict[str, Any]]:
        return [
            o
            for o in self.opportunities.values()
            if (contact_id is None or o.get("contactId") == contact_id)
            and (pipeline_id is None or o["pipelineId"] == pipeline_id)
        ]

    def as_ghl(self, contact: Contact) -> dict[str, Any]:
        """The contact as GHL answers it: no nulls, custom fields as ``{id, value}``, no notes."""
        out = {k: v for k, v in asdict(contact).items() if v is not None and k not in _NOT_IN_CONTACT}
        out["customFields"] = [
            {"id": str(c.get("id") or c.get("key")), "value": c.get("field_value", c.get("value"))}
            for c in contact.customFields
        ]
        return out

    # --- OAuth (a Marketplace app's tokens) -------------------------------------------------------
    def mint(self, location_id: str, expires_in: float, scopes: set[str] | None = None) -> dict[str, Any]:
        """A new access token (expiring in ``expires_in`` s) and refresh token for a location."""
        access, refresh = f"at-{_new_id()}", f"rt-{_new_id()}"
        self.token_locations[access] = location_id
        self.access_expiry[access] = time.monotonic() + expires_in
        self.refresh_tokens[refresh] = (location_id, scopes)
        if scopes is not None:
            self.scopes[access] = set(scopes)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(expires_in),
            "refresh_token": refresh,
            "scope": " ".join(sorted(scopes or ())),
            "userType": "Location",
            "locationId": location_id,
            "userId": "sandbox-user",
        }

    def refresh(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """POST /oauth/token with grant_type=refresh_token: GHL's answer (status, body). A
        refresh token is single use: the answer carries its replacement."""
        client = self.oauth_clients.get(form.get("client_id", ""))
        if client is None or client != form.get("client_secret"):
            return 401, {"statusCode": 401, "message": "Invalid client credentials", "error": "Unauthorized"}
        if form.get("grant_type") != "refresh_token":
            return 400, {"statusCode": 400, "message": "Unsupported grant type"}
        grant = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
        if grant is None:
            self.stats["oauth_refused"] += 1
            return 400, {"statusCode": 400, "message": "Invalid grant: refresh token is invalid"}
        self.stats["oauth_refreshes"] += 1
        return 200, self.mint(grant[0], self.oauth_expires_in, grant[1])

    # --- custom fields ------------------------------------------------------------------------
    def define_custom_fields(self, location_id: str, defined: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Set a location's contact custom fields as GHL lists them (ids made up here)."""
        out = []
        for position, spec in enumerate(defined):
            entry = {
                "id": _new_id(),
                "name": str(spec["name"]),
                "fieldKey": str(spec["fieldKey"]),
                "dataType": str(spec.get("dataType", "TEXT")),
                "position": position,
                "locationId": location_id,
                "model": "contact",
            }
            if spec.get("picklistOptions"):
                entry["picklistOptions"] = [str(o) for o in spec["picklistOptions"]]
            out.append(entry)
        self.custom_fields[location_id] = out
        return out

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
