"""GHL's webhooks (InboundMessage, AppointmentCreate, OpportunityStatusUpdate, ContactDndUpdate):
verified with GHL's published scheme (an RSA-SHA256 `x-wh-signature` over the raw body; a
`timestamp` within the tolerance and a `webhookId` never seen before), then passed on to crm_sync
as a LeadEngagementRecorded event through the outbox. The gateway decides nothing about cadences.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from functools import cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from jorge_runtime.kafka.broker import event_message
from schemas.follow_ups import GHL_STOP_WEBHOOKS, LeadEngagementRecorded, LeadEngagementRecordedPayload
from schemas.text import is_storable
from schemas.topics import LEAD_ENGAGEMENT_RECORDED
from services.gateway.dependencies import Gateway, gateway
from services.gateway.errors import API_ERRORS, ApiError
from services.gateway.outbox import ACCEPT_CTES
from services.gateway.publishing import accepting

router = APIRouter(tags=["ghl"])

# The webhook's id among the receipts, with its event; no row when GHL's id was seen before.
_REMEMBER = f"""
WITH accepted AS (
    INSERT INTO ghl_webhook_receipts (webhook_id) VALUES ($10) ON CONFLICT DO NOTHING RETURNING webhook_id
), {ACCEPT_CTES}
SELECT true FROM accepted"""  # noqa: S608  constant SQL, values as $n placeholders

SIGNATURE_HEADER = "x-wh-signature"
#: The key GHL publishes for `x-wh-signature` (WebhookAuthentication.md); GHL_WEBHOOK_PUBLIC_KEY overrides.
GHL_PUBLIC_KEY = """-----BEGIN PUBLIC KEY-----
MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAokvo/r9tVgcfZ5DysOSC
Frm602qYV0MaAiNnX9O8KxMbiyRKWeL9JpCpVpt4XHIcBOK4u3cLSqJGOLaPuXw6
dO0t6Q/ZVdAV5Phz+ZtzPL16iCGeK9po6D6JHBpbi989mmzMryUnQJezlYJ3DVfB
csedpinheNnyYeFXolrJvcsjDtfAeRx5ByHQmTnSdFUzuAnC9/GepgLT9SM4nCpv
uxmZMxrJt5Rw+VUaQ9B8JSvbMPpez4peKaJPZHBbU3OdeCVx5klVXXZQGNHOs8gF
3kvoV5rTnXV0IknLBXlcKKAQLZcY/Q9rG6Ifi9c+5vqlvHPCUJFT5XUGG5RKgOKU
J062fRtN+rLYZUV+BjafxQauvC8wSWeYja63VSUruvmNj8xkx2zE/Juc+yjLjTXp
IocmaiFeAO6fUtNjDeFVkhf5LNb59vECyrHD2SQIrhgXpO4Q3dVNA5rw576PwTzN
h/AMfHKIjE4xQA1SZuYJmNnmVZLIZBlQAF9Ntd03rfadZ+yDiOXCCs9FkHibELhC
HULgCsnuDJHcrGNd5/Ddm5hxGQ0ASitgHeMZ0kcIOwKDOzOU53lDza6/Y09T7sYJ
PQe7z0cvj7aE4B+Ax1ZoZGPzpJlZtGXCsu9aTEGEnKzmsFqwcSsnw3JB31IGKAyk
T1hhTiaCeIY/OwwwNUY2yvcCAwEAAQ==
-----END PUBLIC KEY-----
"""


@cache
def _public_key(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("GHL_WEBHOOK_PUBLIC_KEY is not an RSA public key")
    return key


def signature_valid(pem: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) is GHL's RSA-SHA256 (PKCS#1 v1.5) signature of ``body``."""
    try:
        raw = base64.b64decode(signature, validate=True)
        _public_key(pem).verify(raw, body, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def timestamp_fresh(value: Any, now: datetime, tolerance_seconds: int) -> bool:
    """Whether the payload's ISO-8601 ``timestamp`` is within the tolerance of ``now``."""
    if not isinstance(value, str):
        return False
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return abs((now - at).total_seconds()) <= tolerance_seconds


def parse_payload(body: bytes) -> dict[str, Any]:
    """The signed body as a JSON object whose every string PostgreSQL can store; 400 otherwise
    (GHL's signature proves who sent it, not that it is well formed)."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "The body is not JSON (or is nested too deep).") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", "The body is not a JSON object.")
    for name, value in payload.items():
        if not is_storable(name) or (isinstance(value, str) and not is_storable(value)):
            raise ApiError(
                400,
                "invalid_payload",
                f"Field {name!a} holds text that cannot be stored (NUL or a lone surrogate).",
            )
    return payload


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value) else None


@router.post("/v1/ghl/webhooks", status_code=202, responses=API_ERRORS)
async def receive_ghl_webhook(request: Request, gw: Gateway = Depends(gateway)) -> JSONResponse:
    """A GHL webhook. No API key: GHL's signature authenticates it. 401 `invalid_signature` or
    `stale_timestamp`; 409 `webhook_replayed` for a `webhookId` already accepted; 202 when it is
    passed on (or `ignored`: a type or location follow-ups do not use)."""
    body = await request.body()
    settings = gw.settings
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature or not signature_valid(
        settings.ghl_webhook_public_key or GHL_PUBLIC_KEY, body, signature
    ):
        raise ApiError(
            401,
            "invalid_signature",
            f"The {SIGNATURE_HEADER} header is missing or is not GHL's signature of the body.",
        )
    payload = parse_payload(body)
    tolerance = settings.ghl_webhook_tolerance_seconds
    if not timestamp_fresh(payload.get("timestamp"), datetime.now(UTC), tolerance):
        raise ApiError(
            401,
            "stale_timestamp",
            f"The payload's timestamp is missing or more than {tolerance} s from now (replay protection).",
        )
    webhook_id = _text(payload.get("webhookId"))
    if webhook_id is None:
        raise ApiError(400, "missing_webhook_id", "The payload has no webhookId (replay protection).")
    kind = _text(payload.get("type"))
    location_id = _text(payload.get("locationId"))
    if kind not in GHL_STOP_WEBHOOKS or location_id is None:
        return JSONResponse({"status": "ignored", "reason": "not a webhook follow-ups use"}, status_code=202)
    organization_id = await gw.pool.fetchval(
        "SELECT organization_id FROM crm_credentials WHERE location_id = $1 LIMIT 1", location_id
    )
    if organization_id is None and location_id == settings.ghl_location_id:
        organization_id = settings.ghl_organization
    if organization_id is None:
        return JSONResponse(
            {"status": "ignored", "reason": "no organisation uses this location"}, status_code=202
        )
    contact_id = _text(payload.get("contactId")) or _text(
        (payload.get("appointment") or {}).get("contactId")
        if isinstance(payload.get("appointment"), dict)
        else None
    )
    if kind == "ContactDndUpdate":
        contact_id = _text(payload.get("id"))
    dnd = payload.get("dnd")
    event = LeadEngagementRecorded(
        organization_id=str(organization_id),
        correlation_id=request.state.request_id,
        payload=LeadEngagementRecordedPayload(
            source="ghl",
            event=kind,
            ghl_location_id=location_id,
            ghl_contact_id=contact_id,
            ghl_webhook_id=webhook_id,
            ghl_status=_text(payload.get("status")) if kind == "OpportunityStatusUpdate" else None,
            ghl_direction=_text(payload.get("direction")),
            ghl_dnd=dnd if isinstance(dnd, bool) else None,
        ),
    )
    message = event_message(event, topic=gw.topics(LEAD_ENGAGEMENT_RECORDED), key=contact_id or location_id)

    if await accepting(gw, message)(_REMEMBER, webhook_id) is None:  # nothing stored, nothing published
        raise ApiError(
            409, "webhook_replayed", f"Webhook {webhook_id} was accepted before; a replay is refused."
        )
    return JSONResponse({"status": "accepted", "event_id": str(event.event_id)}, status_code=202)
