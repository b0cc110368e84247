"""The sandbox's HTTP side: GHL's v2 routes crm_sync uses, plus /_sandbox/* to read and steer it.

Run it with ``python -m sandboxes.ghl --port 8090``. ``GET /`` lists every contact with its
tags, notes and opportunities. ``POST /_sandbox/faults`` injects 429 storms, 5xx bursts, slow
answers, late answers to calls already carried out, permanent rejections (400/403/404/422) of
the calls naming a marker, and upserts that create the contact but answer 422;
``POST /_sandbox/limits`` changes the per-token limits (e.g. the trial token's 25 per 10 s, or the
daily window and whether ``x-ratelimit-daily-reset`` is sent);
``GET /_sandbox/webhook-key`` and ``POST /_sandbox/webhooks/send`` play GHL's signed webhooks
(InboundMessage, AppointmentCreate...) to a receiver, with a key pair of the sandbox's own;
``GET /_sandbox/stats`` counts requests, 429s caused by the limit (``rate_limited``) and injected ones apart.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, fields
from typing import Any
from urllib.parse import parse_qsl

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from sandboxes.ghl.contract import contract
from sandboxes.ghl.signing import WebhookSigner
from sandboxes.ghl.state import Contact, Faults, Limits, SandboxState

Body = dict[str, Any]


def create_app(state: SandboxState | None = None) -> FastAPI:
    """The sandbox as an ASGI app around one state (tests may pass their own)."""
    sandbox = state or SandboxState()
    app = FastAPI(
        title="GoHighLevel sandbox", docs_url="/_sandbox/docs", openapi_url="/_sandbox/openapi.json"
    )
    app.state.sandbox = sandbox

    spec = contract()
    signer = WebhookSigner()

    async def gate(request: Request) -> JSONResponse | dict[str, str]:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        call = f"{request.method} {request.url.path}"
        raw = await request.body()
        content = f"{request.url.query} {raw.decode(errors='replace')}"
        op = request.state.operation
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip()
        query = dict(request.query_params)
        problem = spec.check_request(op, dict(request.headers), query, _parsed(raw, kind), kind)
        arrived = request.state.arrived
        verdict = sandbox.gate(token, call, content, scopes=op.scopes, problem=problem, arrived=arrived)
        request.state.late_ms = verdict.late_ms
        if verdict.status is not None:
            assert verdict.body is not None
            return JSONResponse(verdict.body, status_code=verdict.status, headers=verdict.headers)
        if verdict.delay_ms:
            await asyncio.sleep(verdict.delay_ms / 1000)
        request.state.created_then_422 = verdict.created_then_422
        return verdict.headers

    @app.middleware("http")
    async def as_the_spec_says(request: Request, call_next: Any) -> Any:
        """A call no vendored spec describes is not GHL's: 404 as GHL's router answers it. Every
        answer is checked against the spec's response schema (violations are recorded). The
        'late answer' fault: the call was carried out; only its answer is delayed."""
        request.state.arrived = time.monotonic()
        path = request.url.path
        if path.startswith("/_sandbox") or path in ("/", "/health"):
            return await call_next(request)
        op = spec.operation(request.method, path)
        if op is None:
            message = f"Cannot {request.method} {path}"
            sandbox.stats["contract_refused"] += 1
            sandbox.refused.append(f"{request.method} {path} 404: no GHL operation")
            return JSONResponse({"statusCode": 404, "message": message, "error": "Not Found"}, 404)
        request.state.operation = op
        response = await call_next(request)
        body = b"".join([chunk async for chunk in response.body_iterator])
        try:
            answered = json.loads(body or b"null")
            sandbox.violations.extend(spec.check_response(op, response.status_code, answered))
        except ValueError:
            sandbox.violations.append(f"{op.operation_id} {response.status_code}: not JSON")
        except Exception as error:  # a spec the checker cannot read must not turn into a 500
            sandbox.violations.append(f"{op.operation_id} {response.status_code}: unchecked ({error})")
        if late_ms := getattr(request.state, "late_ms", 0):
            await asyncio.sleep(late_ms / 1000)
        return Response(body, response.status_code, dict(response.headers), response.media_type)

    def answer(body: Body, status: int, headers: dict[str, str]) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers=headers)

    def missing(headers: dict[str, str], what: str) -> JSONResponse:
        return answer({"statusCode": 404, "message": f"{what} not found"}, 404, headers)

    def unprocessable(headers: dict[str, str], message: str) -> JSONResponse:
        return answer(
            {"statusCode": 422, "message": [message], "error": "Unprocessable Entity"}, 422, headers
        )

    @app.post("/contacts/upsert")
    async def upsert_contact(request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        contact, new = sandbox.upsert_contact(await request.json())
        if new and request.state.created_then_422:
            sandbox.faults.upsert_422_created = max(0, sandbox.faults.upsert_422_created - 1)
            sandbox.stats["injected_422_created"] += 1
            return unprocessable(gated, "The request could not be completed")
        return answer({"new": new, "contact": sandbox.as_ghl(contact), "traceId": contact.id}, 200, gated)

    @app.get("/contacts/search/duplicate")
    async def search_duplicate(request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        q = request.query_params
        found = sandbox.find_duplicate(q.get("locationId", ""), q.get("email"), q.get("number"))
        return answer({"contact": sandbox.as_ghl(found) if found else None}, 200, gated)

    def contact_or_none(contact_id: str) -> Contact | None:
        return sandbox.contacts.get(contact_id)

    @app.get("/contacts/{contact_id}")
    async def get_contact(contact_id: str, request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        contact = contact_or_none(contact_id)
        if contact is None:
            return missing(gated, "Contact")
        return answer({"contact": sandbox.as_ghl(contact)}, 200, gated)

    @app.put("/contacts/{contact_id}")
    async def update_contact(contact_id: str, request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        contact = contact_or_none(contact_id)
        if contact is None:
            return missing(gated, "Contact")
        updated = sandbox.update_contact(contact, await request.json())
        # "succeded" is GHL's own spelling in this answer.
        return answer({"succeded": True, "contact": sandbox.as_ghl(updated)}, 200, gated)

    @app.post("/contacts/{contact_id}/tags")
    async def add_tags(contact_id: str, request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        contact = contact_or_none(contact_id)
        if contact is None:
            return missing(gated, "Contact")
        body = await request.json()
        return answer({"tags": sandbox.add_tags(contact, [str(t) for t in body["tags"]])}, 201, gated)

    @app.post("/contacts/{contact_id}/notes")
    async def add_note(contact_id: str, request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        contact = contact_or_none(contact_id)
        if contact is None:
            return missing(gated, "Contact")
        body = await request.json()
        if not body.get("body"):
            return unprocessable(gated, "body should not be empty")
        return answer({"note": sandbox.add_note(contact, body["body"], body.get("userId"))}, 201, gated)

    @app.get("/contacts/{contact_id}/notes")
    async def list_notes(contact_id: str, request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        contact = contact_or_none(contact_id)
        return answer({"notes": contact.notes}, 200, gated) if contact else missing(gated, "Contact")

    @app.post("/contacts/{contact_id}/tasks")
    async def create_task(contact_id: str, request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        contact = contact_or_none(contact_id)
        if contact is None:
            return missing(gated, "Contact")
        return answer({"task": sandbox.add_task(contact, await request.json())}, 201, gated)

    @app.get("/contacts/{contact_id}/tasks")
    async def list_tasks(contact_id: str, request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        contact = contact_or_none(contact_id)
        return answer({"tasks": contact.tasks}, 200, gated) if contact else missing(gated, "Contact")

    @app.post("/contacts/{contact_id}/workflow/{workflow_id}")
    async def add_to_workflow(contact_id: str, workflow_id: str, request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        contact = contact_or_none(contact_id)
        if contact is None:
            return missing(gated, "Contact")
        sandbox.add_to_workflow(contact, workflow_id)
        return answer({"succeded": True}, 200, gated)

    @app.post("/opportunities/")
    async def create_opportunity(request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        body = await request.json()
        if body["contactId"] not in sandbox.contacts:
            return unprocessable(gated, "contact not found")
        return answer({"opportunity": sandbox.create_opportunity(body)}, 201, gated)

    @app.put("/opportunities/{opportunity_id}")
    async def update_opportunity(opportunity_id: str, request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        opportunity = sandbox.opportunities.get(opportunity_id)
        if opportunity is None:
            return missing(gated, "Opportunity")
        updated = sandbox.update_opportunity(opportunity, await request.json())
        return answer({"opportunity": updated}, 200, gated)

    @app.post("/opportunities/upsert")
    async def upsert_opportunity(request: Request) -> JSONResponse:
        """The current spec's upsert: matched on ``id`` (no contactId; followers are users)."""
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        body = await request.json()
        existing = sandbox.opportunities.get(str(body.get("id", "")))
        if existing is not None:
            updated = sandbox.update_opportunity(existing, body)
            return answer({"opportunity": updated, "new": False}, 200, gated)
        return answer({"opportunity": sandbox.create_opportunity(body), "new": True}, 201, gated)

    @app.get("/opportunities/search")
    async def search_opportunities(request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        q = request.query_params
        found = [
            o
            for o in sandbox.search_opportunities(q.get("contact_id"), q.get("pipeline_id"))
            if o["locationId"] == q["location_id"]
        ]
        return answer({"opportunities": found, "meta": {"total": len(found)}}, 200, gated)

    @app.post("/oauth/token")
    async def oauth_token(request: Request) -> JSONResponse:
        """GHL's token endpoint (no Bearer, not under a location's limits): the refresh grant."""
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        form = _parsed(await request.body(), kind)
        problem = spec.check_request(request.state.operation, dict(request.headers), {}, form, kind)
        if problem is not None:
            return JSONResponse(sandbox.refuse("POST /oauth/token", problem), problem.status)
        status, body = sandbox.refresh(form)
        return JSONResponse(body, status)

    @app.get("/locations/{location_id}/customFields")
    async def custom_fields(location_id: str, request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        return answer({"customFields": sandbox.custom_fields.get(location_id, [])}, 200, gated)

    # --- steering and reading the sandbox (no auth, no limits) -------------------------------
    @app.get("/")
    @app.get("/_sandbox/contacts")
    async def listing(locationId: str | None = None) -> Body:
        """Every contact with its tags, notes and opportunities: the "CRM" a new user reads."""
        contacts = sandbox.listing(locationId)
        return {"contacts": contacts, "total": len(contacts)}

    @app.get("/_sandbox/stats")
    async def stats() -> Body:
        return {
            **dict(sandbox.stats),
            "contacts": len(sandbox.contacts),
            "opportunities": len(sandbox.opportunities),
            "contract_violations": len(sandbox.violations),
            "limits": asdict(sandbox.limits),
            "faults": asdict(sandbox.faults),
        }

    @app.get("/_sandbox/requests")
    async def request_times() -> Body:
        """Arrival times (epoch seconds) of the requests the limits let through."""
        return {"accepted_at": sandbox.accepted_at, "by_location": sandbox.accepted_by}

    @app.post("/_sandbox/faults")
    async def set_faults(body: Body) -> Body:
        known = {f.name for f in fields(Faults)}
        sandbox.faults = Faults(**{k: v for k, v in body.items() if k in known})
        return asdict(sandbox.faults)

    @app.post("/_sandbox/limits")
    async def set_limits(body: Body) -> Body:
        """Every location's limits, or with ``"location"`` that one location's (or token's)."""
        known = {f.name for f in fields(Limits)}
        where = body.get("location")
        base = sandbox.limits_of(str(where)) if where else sandbox.limits
        limits = Limits(**{**asdict(base), **{k: v for k, v in body.items() if k in known}})
        if where:
            sandbox.location_limits[str(where)] = limits
        else:
            sandbox.limits = limits
        return asdict(limits)

    @app.post("/_sandbox/revoke")
    async def revoke(body: Body) -> Body:
        sandbox.revoked.add(str(body["token"]))
        return {"revoked": len(sandbox.revoked)}

    @app.post("/_sandbox/tokens")
    async def tokens(body: Body) -> Body:
        """Describe a token: ``{"token", "location_id"?, "scopes"?: [...], "expired"?: bool}``.
        Tokens of one location share its limits; a token with ``scopes`` gets GHL's missing-scope
        401 on calls that need another; an expired one gets GHL's expired-token 401."""
        token = str(body["token"])
        if body.get("location_id"):
            sandbox.token_locations[token] = str(body["location_id"])
        if body.get("scopes") is not None:
            sandbox.scopes[token] = {str(s) for s in body["scopes"]}
        if body.get("expired"):
            sandbox.expired.add(token)
        else:
            sandbox.expired.discard(token)
        return {"token_locations": len(sandbox.token_locations)}

    @app.post("/_sandbox/oauth")
    async def oauth(body: Body) -> Body:
        """A Marketplace app and an installation: ``{"client_id", "client_secret", "location_id",
        "expires_in", "scopes"?}`` registers the client, sets the lifetime of the access tokens
        its refreshes give (``refresh_expires_in``, default a day) and returns a first pair."""
        sandbox.oauth_clients[str(body["client_id"])] = str(body["client_secret"])
        sandbox.oauth_expires_in = float(body.get("refresh_expires_in", 86_399))
        scopes = {str(s) for s in body["scopes"]} if body.get("scopes") else None
        return sandbox.mint(str(body["location_id"]), float(body.get("expires_in", 86_399)), scopes)

    @app.post("/_sandbox/custom_fields")
    async def set_custom_fields(body: Body) -> Body:
        """A location's contact custom fields: ``{"locationId", "fields": [{"name", "fieldKey",
        "dataType", "picklistOptions"?}]}``; ids are made up and returned."""
        return {"customFields": sandbox.define_custom_fields(str(body["locationId"]), body["fields"])}

    @app.get("/_sandbox/webhook-key")
    async def webhook_key() -> Body:
        """The public key of the sandbox's webhook signatures (give it to GHL_WEBHOOK_PUBLIC_KEY)."""
        return {"public_key": signer.public_pem}

    @app.post("/_sandbox/webhooks/send")
    async def send_webhook(body: Body) -> Body:
        """Send a signed GHL webhook: ``{"url", "event": {...GHL's body...}, "age_seconds",
        "webhook_id", "tamper"}``. ``age_seconds`` backdates its timestamp; ``tamper`` changes
        the body after signing. Answers with the receiver's status and body."""
        raw, headers = signer.webhook(
            dict(body["event"]),
            age_seconds=float(body.get("age_seconds", 0)),
            webhook_id=body.get("webhook_id"),
        )
        if body.get("tamper"):
            raw = raw.replace(b'"type"', b'"type" ', 1)
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(str(body["url"]), content=raw, headers=headers)
        try:
            answered: Any = response.json()
        except ValueError:
            answered = response.text
        return {"status": response.status_code, "body": answered, "sent": json.loads(raw)}

    @app.get("/_sandbox/violations")
    async def violations() -> Body:
        """Answers of this sandbox that broke GHL's response schemas, and requests refused
        because GHL's spec refuses them (tests expect none of either)."""
        return {"violations": sandbox.violations, "refused": sandbox.refused}

    @app.get("/health")
    async def health() -> Body:
        return {"status": "ok", "service": "ghl-sandbox"}

    return app


def _parsed(raw: bytes, kind: str) -> Any:
    """The request body as the spec describes it: JSON, form fields, or None when empty."""
    if not raw:
        return None
    if kind == "application/x-www-form-urlencoded":
        return dict(parse_qsl(raw.decode(errors="replace")))
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
