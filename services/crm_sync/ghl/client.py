"""GoHighLevel API v2 adapter: the calls crm_sync makes, under the shared budget.

Every call waits for the location's budget, sends with the v2 headers, reports the answer's
X-RateLimit-* headers back to the budget and sorts failures: connection resets are retried at
once a few times (tenacity); 429, 5xx and timeouts raise GhlTransientError (the caller
schedules a retry through the delay topics); 401 raises GhlUnauthorizedError; other 4xx raise
GhlRejectedError. Tokens never appear in exceptions or logs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from jorge_runtime.observability.metrics import (
    EXTERNAL_UP,
    GHL_RATE_LIMITED,
    GHL_REQUEST_DURATION,
    GHL_REQUESTS,
)
from services.crm_sync.ghl.budget import GhlBudget, Priority
from services.crm_sync.ghl.credential_store import RefreshedToken, RefreshRefused
from services.crm_sync.names import SERVICE

API_VERSION = "2021-07-28"
# Connection resets: worth an immediate second try. Only a failed connect proves the request
# never reached GHL, so calls that are not idempotent (a note) retry that one alone.
_RESET_ERRORS = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
_NOT_SENT_ERRORS = (httpx.ConnectError,)


@dataclass(frozen=True, slots=True)
class GhlCredentials:
    """One organisation's location and token; the token stays a SecretStr until sent."""

    location_id: str
    token: SecretStr
    pipeline_id: str | None = None
    stage_id: str | None = None


class GhlError(Exception):
    """A GHL call failed; the message never holds the token or personal data."""

    def __init__(self, operation: str, status: int | None, detail: str) -> None:
        super().__init__(f"GHL {operation}: {status or 'no answer'} {detail}".strip())
        self.operation = operation
        self.status = status


class GhlTransientError(GhlError):
    """429, 5xx, timeout or connection failure: the same call may succeed later."""


class GhlUnauthorizedError(GhlError):
    """401: the organisation's token is wrong, expired or revoked (GHL's message is kept)."""


class GhlScopeError(GhlUnauthorizedError):
    """401 "not authorized for this scope": the token is fine but lacks ``scope``."""

    def __init__(self, operation: str, scope: str, detail: str) -> None:
        super().__init__(operation, 401, f"missing scope {scope}: {detail}")
        self.scope = scope


class GhlRejectedError(GhlError):
    """400, 403, 404, 422...: this request will never succeed as it is."""


@dataclass(frozen=True, slots=True)
class GhlResponse:
    status: int
    body: dict[str, Any]


class GhlClient:
    """One pooled HTTP client for every organisation; credentials travel with each call."""

    def __init__(
        self,
        base_url: str,
        budget: GhlBudget,
        *,
        timeout_seconds: float = 15.0,
        max_wait_ms: int | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._budget = budget
        self._timeout = timeout_seconds
        self._max_wait_ms = max_wait_ms
        self._http: httpx.AsyncClient | None = None

    @property
    def budget(self) -> GhlBudget:
        """The locations' shared budget every call of this client waits on."""
        return self._budget

    async def open(self) -> None:
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            timeout=httpx.Timeout(self._timeout, connect=min(5.0, self._timeout)),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def call(
        self,
        operation: str,
        method: str,
        path: str,
        credentials: GhlCredentials,
        *,
        priority: Priority = "standard",
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        accept: tuple[int, ...] = (),
        idempotent: bool = True,
        scope: str = "",
    ) -> GhlResponse:
        """Send one call; 2xx (and statuses in ``accept``) return, anything else raises."""
        if self._http is None:
            raise RuntimeError("GhlClient is not open")
        http = self._http
        headers = {
            "Authorization": f"Bearer {credentials.token.get_secret_value()}",
            "Version": API_VERSION,
            "Accept": "application/json",
        }
        location = credentials.location_id
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(_RESET_ERRORS if idempotent else _NOT_SENT_ERRORS),
                stop=stop_after_attempt(3),
                wait=wait_exponential(multiplier=0.1, max=1.0),
                reraise=True,
            ):
                with attempt:
                    granted_at = await self._budget.acquire(location, priority, max_wait_ms=self._max_wait_ms)
                    started = time.perf_counter()
                    response = await http.request(method, path, headers=headers, json=json, params=params)
                    GHL_REQUEST_DURATION.labels(operation).observe(time.perf_counter() - started)
        except httpx.TimeoutException as exc:
            GHL_REQUESTS.labels(operation, "timeout").inc()
            raise GhlTransientError(operation, None, f"timeout ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            GHL_REQUESTS.labels(operation, "connection_error").inc()
            EXTERNAL_UP.labels(SERVICE, "ghl").set(0)
            raise GhlTransientError(operation, None, f"connection failed ({type(exc).__name__})") from None
        status = response.status_code
        GHL_REQUESTS.labels(operation, str(status)).inc()
        EXTERNAL_UP.labels(SERVICE, "ghl").set(0 if status >= 500 else 1)
        await self._budget.observe(location, response.headers, status, granted_at)
        body = _json(response)
        if 200 <= status < 300 or status in accept:
            return GhlResponse(status, body)
        detail = _message(body)
        if status == 429:
            GHL_RATE_LIMITED.labels(location).inc()
            raise GhlTransientError(operation, status, "rate limited")
        if status >= 500 or status == 408:
            raise GhlTransientError(operation, status, detail)
        if status == 401:
            if "scope" in detail.lower():
                raise GhlScopeError(operation, scope or "unknown", detail)
            raise GhlUnauthorizedError(operation, status, detail or "token rejected")
        raise GhlRejectedError(operation, status, detail)

    # --- the calls ------------------------------------------------------------------------------
    async def upsert_contact(
        self, credentials: GhlCredentials, fields: dict[str, Any], priority: Priority
    ) -> GhlResponse:
        """POST /contacts/upsert; a 422 is returned (it may still have created the contact)."""
        body = {**fields, "locationId": credentials.location_id}
        return await self.call(
            "upsert_contact",
            "POST",
            "/contacts/upsert",
            credentials,
            priority=priority,
            json=body,
            accept=(422,),
            scope="contacts.write",
        )

    async def update_contact(
        self, credentials: GhlCredentials, contact_id: str, fields: dict[str, Any], priority: Priority
    ) -> None:
        """PUT /contacts/{id}: only the fields given (no locationId: GHL refuses it here)."""
        await self.call(
            "update_contact",
            "PUT",
            f"/contacts/{contact_id}",
            credentials,
            priority=priority,
            json=fields,
            scope="contacts.write",
        )

    async def find_duplicate(
        self, credentials: GhlCredentials, email: str | None, phone: str | None, priority: Priority
    ) -> str | None:
        """The id of the contact GHL's duplicate rule matches, if any."""
        contact = await self.duplicate_contact(credentials, email, phone, priority)
        return str(contact["id"]) if contact is not None else None

    async def duplicate_contact(
        self, credentials: GhlCredentials, email: str | None, phone: str | None, priority: Priority
    ) -> dict[str, Any] | None:
        """The contact GHL's duplicate rule matches (email first, then phone), if any."""
        params = {"locationId": credentials.location_id}
        if email:
            params["email"] = email
        if phone:
            params["number"] = phone
        answer = await self.call(
            "find_duplicate",
            "GET",
            "/contacts/search/duplicate",
            credentials,
            priority=priority,
            params=params,
            scope="contacts.readonly",
        )
        contact = answer.body.get("contact")
        return contact if isinstance(contact, dict) and contact.get("id") else None

    async def add_tags(
        self, credentials: GhlCredentials, contact_id: str, tags: list[str], priority: Priority
    ) -> None:
        """POST /contacts/{id}/tags: adds, never replaces."""
        await self.call(
            "add_tags",
            "POST",
            f"/contacts/{contact_id}/tags",
            credentials,
            priority=priority,
            json={"tags": tags},
            scope="contacts.write",
        )

    async def add_note(
        self, credentials: GhlCredentials, contact_id: str, body: str, priority: Priority
    ) -> str:
        """POST /contacts/{id}/notes; the note's id."""
        answer = await self.call(
            "add_note",
            "POST",
            f"/contacts/{contact_id}/notes",
            credentials,
            priority=priority,
            json={"body": body},
            idempotent=False,
            scope="contacts.write",
        )
        return str((answer.body.get("note") or {}).get("id", ""))

    async def list_notes(
        self, credentials: GhlCredentials, contact_id: str, priority: Priority
    ) -> list[dict[str, Any]]:
        """GET /contacts/{id}/notes."""
        answer = await self.call(
            "list_notes",
            "GET",
            f"/contacts/{contact_id}/notes",
            credentials,
            priority=priority,
            scope="contacts.readonly",
        )
        notes = answer.body.get("notes")
        return notes if isinstance(notes, list) else []

    async def find_opportunity(
        self, credentials: GhlCredentials, contact_id: str, pipeline_id: str, priority: Priority
    ) -> str | None:
        """GET /opportunities/search by contact and pipeline: the id of the contact's
        opportunity in that pipeline, if any."""
        answer = await self.call(
            "find_opportunity",
            "GET",
            "/opportunities/search",
            credentials,
            priority=priority,
            params={
                "location_id": credentials.location_id,
                "contact_id": contact_id,
                "pipeline_id": pipeline_id,
            },
            scope="opportunities.readonly",
        )
        found = answer.body.get("opportunities")
        ids = (
            [str(o["id"]) for o in found if isinstance(o, dict) and o.get("id")]
            if isinstance(found, list)
            else []
        )
        return ids[0] if ids else None

    async def create_opportunity(
        self, credentials: GhlCredentials, fields: dict[str, Any], priority: Priority
    ) -> str:
        """POST /opportunities/ (takes ``contactId``); the new opportunity's id."""
        answer = await self.call(
            "create_opportunity",
            "POST",
            "/opportunities/",
            credentials,
            priority=priority,
            json={**fields, "locationId": credentials.location_id},
            idempotent=False,
            scope="opportunities.write",
        )
        return str((answer.body.get("opportunity") or {}).get("id", ""))

    async def update_opportunity(
        self, credentials: GhlCredentials, opportunity_id: str, fields: dict[str, Any], priority: Priority
    ) -> None:
        """PUT /opportunities/{id}: only the fields given."""
        await self.call(
            "update_opportunity",
            "PUT",
            f"/opportunities/{opportunity_id}",
            credentials,
            priority=priority,
            json=fields,
            scope="opportunities.write",
        )

    async def custom_fields(self, credentials: GhlCredentials, priority: Priority) -> list[dict[str, Any]]:
        """GET /locations/{id}/customFields?model=contact: the location's contact custom fields."""
        answer = await self.call(
            "list_custom_fields",
            "GET",
            f"/locations/{credentials.location_id}/customFields",
            credentials,
            priority=priority,
            params={"model": "contact"},
            scope="locations/customFields.readonly",
        )
        listed = answer.body.get("customFields")
        return [f for f in listed if isinstance(f, dict)] if isinstance(listed, list) else []

    async def create_task(
        self, credentials: GhlCredentials, contact_id: str, fields: dict[str, Any], priority: Priority
    ) -> str:
        """POST /contacts/{id}/tasks (CreateTaskParams); the task's id."""
        answer = await self.call(
            "create_task",
            "POST",
            f"/contacts/{contact_id}/tasks",
            credentials,
            priority=priority,
            json=fields,
            idempotent=False,
            scope="contacts.write",
        )
        return str((answer.body.get("task") or {}).get("id", ""))

    async def list_tasks(
        self, credentials: GhlCredentials, contact_id: str, priority: Priority
    ) -> list[dict[str, Any]]:
        """GET /contacts/{id}/tasks."""
        answer = await self.call(
            "list_tasks",
            "GET",
            f"/contacts/{contact_id}/tasks",
            credentials,
            priority=priority,
            scope="contacts.readonly",
        )
        tasks = answer.body.get("tasks")
        return [t for t in tasks if isinstance(t, dict)] if isinstance(tasks, list) else []

    async def add_to_workflow(
        self, credentials: GhlCredentials, contact_id: str, workflow_id: str, priority: Priority
    ) -> None:
        """POST /contacts/{id}/workflow/{workflowId}: the contact enters the workflow now."""
        await self.call(
            "add_to_workflow",
            "POST",
            f"/contacts/{contact_id}/workflow/{workflow_id}",
            credentials,
            priority=priority,
            json={},
            idempotent=False,
            scope="contacts.write",
        )

    async def refresh_token(
        self, client_id: str, client_secret: SecretStr, refresh_token: SecretStr
    ) -> RefreshedToken:
        """POST /oauth/token (oauth.json, a form): a new access token and the rotated refresh
        token. GHL refusing it (400, 401, 422) raises RefreshRefused with GHL's message; no answer
        or a 5xx raises GhlTransientError. Not under a location's budget (not a location call)."""
        if self._http is None:
            raise RuntimeError("GhlClient is not open")
        form = {
            "client_id": client_id,
            "client_secret": client_secret.get_secret_value(),
            "grant_type": "refresh_token",
            "refresh_token": refresh_token.get_secret_value(),
            "user_type": "Location",
        }
        try:
            response = await self._http.post(
                "/oauth/token", data=form, headers={"Accept": "application/json"}
            )
        except httpx.TransportError as exc:
            GHL_REQUESTS.labels("refresh_token", "connection_error").inc()
            raise GhlTransientError("refresh_token", None, f"no answer ({type(exc).__name__})") from None
        status = response.status_code
        GHL_REQUESTS.labels("refresh_token", str(status)).inc()
        body = _json(response)
        if status >= 500 or status in (408, 429):
            raise GhlTransientError("refresh_token", status, _message(body))
        if status >= 400:
            raise RefreshRefused(f"GHL refused the refresh token: {status} {_message(body)}".strip())
        try:
            return RefreshedToken(
                SecretStr(str(body["access_token"])),
                SecretStr(str(body["refresh_token"])),
                float(body.get("expires_in") or 86_399),
            )
        except KeyError:
            raise GhlTransientError("refresh_token", status, "answer without tokens") from None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {"data": body}


def _message(body: dict[str, Any]) -> str:
    message = body.get("message", "")
    if isinstance(message, list):
        message = "; ".join(str(m) for m in message)
    return str(message)[:200]
