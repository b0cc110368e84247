"""The sandbox's HTTP side: GHL's v2 routes crm_sync uses, plus /_sandbox/* to read and steer it.

Run it with ``python -m sandboxes.ghl --port 8090``. ``GET /`` lists every contact with its
tags, notes and opportunities. ``POST /_sandbox/faults`` injects 429 storms, 5xx bursts, slow
answers, late answers to calls already carried out, permanent rejections (400/403/404/422) of
the calls naming a marker, and upserts that create the contact but answer 422;
``POST /_sandbox/limits`` changes the per-token limits (e.g. the trial token's 25 per 10 s, or the
daily window and whether ``x-ratelimit-daily-reset`` is sent);
``GET /_sandbox/stats`` counts requests, 429s caused by the limit (``rate_limited``) and injected ones apart.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, fields
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sandboxes.ghl.state import Contact, Faults, Limits, SandboxState

Body = dict[str, Any]


def create_app(state: SandboxState | None = None) -> FastAPI:
    """The sandbox as an ASGI app around one state (tests may pass their own)."""
    sandbox = state or SandboxState()
    app = FastAPI(
        title="GoHighLevel sandbox", docs_url="/_sandbox/docs", openapi_url="/_sandbox/openapi.json"
    )
    app.state.sandbox = sandbox

    async def gate(request: Request) -> JSONResponse | dict[str, str]:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        call = f"{request.method} {request.url.path}"
        content = f"{request.url.query} {(await request.body()).decode(errors='replace')}"
        verdict = sandbox.gate(token, request.headers.get("version"), call, content)
        request.state.late_ms = verdict.late_ms
        if verdict.status is not None:
            assert verdict.body is not None
            return JSONResponse(verdict.body, status_code=verdict.status, headers=verdict.headers)
        if verdict.delay_ms:
            await asyncio.sleep(verdict.delay_ms / 1000)
        request.state.created_then_422 = verdict.created_then_422
        return verdict.headers

    @app.middleware("http")
    async def answer_late(request: Request, call_next: Any) -> Any:
        """The 'late answer' fault: the call was carried out; only its answer is delayed."""
        response = await call_next(request)
        if late_ms := getattr(request.state, "late_ms", 0):
            await asyncio.sleep(late_ms / 1000)
        return response

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
        body = await request.json()
        if not body.get("locationId"):
            return unprocessable(gated, "locationId should not be empty")
        contact, new = sandbox.upsert_contact(body)
        if new and request.state.created_then_422:
            sandbox.faults.upsert_422_created = max(0, sandbox.faults.upsert_422_created - 1)
            sandbox.stats["injected_422_created"] += 1
            return unprocessable(gated, "The request could not be completed")
        return answer({"new": new, "contact": asdict(contact), "traceId": contact.id}, 200, gated)

    @app.get("/contacts/search/duplicate")
    async def search_duplicate(request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        q = request.query_params
        found = sandbox.find_duplicate(q.get("locationId", ""), q.get("email"), q.get("number"))
        return answer({"contact": asdict(found) if found else None}, 200, gated)

    def contact_or_none(contact_id: str) -> Contact | None:
        return sandbox.contacts.get(contact_id)

    @app.get("/contacts/{contact_id}")
    async def get_contact(contact_id: str, request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        contact = contact_or_none(contact_id)
        return answer({"contact": asdict(contact)}, 200, gated) if contact else missing(gated, "Contact")

    @app.put("/contacts/{contact_id}")
    async def update_contact(contact_id: str, request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        contact = contact_or_none(contact_id)
        if contact is None:
            return missing(gated, "Contact")
        body = await request.json()
        if "locationId" in body:  # GHL's update takes no locationId and says so
            return unprocessable(gated, "property locationId should not exist")
        # "succeded" is GHL's own spelling in this answer.
        return answer(
            {"succeded": True, "contact": asdict(sandbox.update_contact(contact, body))}, 200, gated
        )

    @app.post("/contacts/{contact_id}/tags")
    async def add_tags(contact_id: str, request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        contact = contact_or_none(contact_id)
        if contact is None:
            return missing(gated, "Contact")
        body = await request.json()
        if not isinstance(body.get("tags"), list):
            return unprocessable(gated, "tags must be an array")
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

    def opportunity_problem(body: Body) -> str | None:
        for name in ("pipelineId", "locationId", "name", "status", "contactId"):
            if not body.get(name):
                return f"{name} should not be empty"
        if body["status"] not in ("open", "won", "lost", "abandoned"):
            return "status must be one of open, won, lost, abandoned"
        if body["contactId"] not in sandbox.contacts:
            return "contact not found"
        return None

    @app.post("/opportunities/")
    async def create_opportunity(request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        body = await request.json()
        if problem := opportunity_problem(body):
            return unprocessable(gated, problem)
        return answer({"opportunity": sandbox.create_opportunity(body)}, 201, gated)

    @app.post("/opportunities/upsert")
    async def upsert_opportunity(request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        body = await request.json()
        if problem := opportunity_problem(body):
            return unprocessable(gated, problem)
        opportunity, new = sandbox.upsert_opportunity(body)
        return answer({"opportunity": opportunity, "new": new}, 200 if not new else 201, gated)

    @app.get("/opportunities/search")
    async def search_opportunities(request: Request) -> JSONResponse:
        gated = await gate(request)
        if isinstance(gated, JSONResponse):
            return gated
        q = request.query_params
        found = sandbox.search_opportunities(q.get("contact_id"), q.get("pipeline_id"))
        return answer({"opportunities": found, "meta": {"total": len(found)}}, 200, gated)

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
            "limits": asdict(sandbox.limits),
            "faults": asdict(sandbox.faults),
        }

    @app.get("/_sandbox/requests")
    async def request_times() -> Body:
        """Arrival times (epoch seconds) of the requests the limits let through."""
        return {"accepted_at": sandbox.accepted_at}

    @app.post("/_sandbox/faults")
    async def set_faults(body: Body) -> Body:
        known = {f.name for f in fields(Faults)}
        sandbox.faults = Faults(**{k: v for k, v in body.items() if k in known})
        return asdict(sandbox.faults)

    @app.post("/_sandbox/limits")
    async def set_limits(body: Body) -> Body:
        known = {f.name for f in fields(Limits)}
        sandbox.limits = Limits(**{**asdict(sandbox.limits), **{k: v for k, v in body.items() if k in known}})
        return asdict(sandbox.limits)

    @app.post("/_sandbox/revoke")
    async def revoke(body: Body) -> Body:
        sandbox.revoked.add(str(body["token"]))
        return {"revoked": len(sandbox.revoked)}

    @app.get("/health")
    async def health() -> Body:
        return {"status": "ok", "service": "ghl-sandbox"}

    return app
