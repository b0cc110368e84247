"""Gateway routes for /v1/webhooks: subscriptions, their secrets, and their delivery history.

Delivering is crm_sync's job: a test event or a redelivery is stored as a pending delivery and
announced with WebhookDeliveryRequested, inside a transaction that commits only once Kafka
acknowledged it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Path, Query, Request, Response

from jorge_runtime.credential_cipher import CredentialCipher
from jorge_runtime.db import DbConnection
from jorge_runtime.kafka.broker import OutgoingMessage, event_message
from jorge_runtime.webhook_secrets import seal
from schemas.topics import WEBHOOK_DELIVERY_REQUESTED
from schemas.webhook_urls import IpNetwork, WebhookUrlError, check_webhook_url, parse_subnets
from schemas.webhooks import (
    DELIVERY_ID_PATTERN,
    ENDPOINT_ID_PATTERN,
    TEST_EVENT,
    WEBHOOK_EVENTS,
    DeliveryRequestAccepted,
    DeliveryStatus,
    InvalidWebhookSecret,
    RegisterWebhookRequest,
    UpdateWebhookRequest,
    WebhookDelivery,
    WebhookDeliveryDetail,
    WebhookDeliveryList,
    WebhookDeliveryRequested,
    WebhookDeliveryRequestedPayload,
    WebhookEndpoint,
    WebhookEndpointList,
    WebhookEndpointWithSecret,
    WebhookPayload,
    check_secret,
    generate_secret,
    new_delivery_id,
    new_endpoint_id,
    new_message_id,
)
from services.gateway.dependencies import CallerDep, Gateway, GatewayDep
from services.gateway.errors import BUS_DOWN, ApiError, documented_errors
from services.gateway.publishing import store_and_publish
from services.gateway.subscription_repository import Position
from services.gateway.tenancy import Caller

router = APIRouter(tags=["webhooks"])


_NOT_FOUND = (404, "webhook_not_found", "No webhook endpoint we_… in your organisation.")
_SECRETS_DOWN = (503, "webhook_secrets_unavailable", "This server cannot encrypt webhook secrets …")
_URL_ERRORS = {
    "private_url": (400, "webhook_url_not_allowed", "The URL points to a private … address."),
    "bad_url": (400, "invalid_webhook_url", "The URL must not contain credentials; …"),
}
_WEBHOOK_ID = Path(pattern=ENDPOINT_ID_PATTERN, examples=["we_5f0c6d2a9b1e4f7a8c3d2e1f"])
_DELIVERY_ID = Path(pattern=DELIVERY_ID_PATTERN, examples=["wd_0a1b2c3d4e5f60718293a4b5"])
_LIMIT = Query(default=20, ge=1, le=100, description="Page size.")
_CURSOR = Query(default=None, max_length=200, description="`next_cursor` of the previous page.")


@lru_cache(maxsize=8)
def _allowed(subnets: str) -> tuple[IpNetwork, ...]:
    return parse_subnets(subnets)


def _checked_url(gw: Gateway, url: str) -> str:
    try:
        return check_webhook_url(
            url,
            require_https=gw.settings.webhook_require_https,
            allowed=_allowed(gw.settings.webhook_allowed_subnets),
        )
    except WebhookUrlError as exc:
        raise ApiError(400, exc.error, exc.message) from None


def _checked_events(events: list[str]) -> list[str]:
    unknown = sorted({e for e in events if e not in WEBHOOK_EVENTS})
    if unknown:
        raise ApiError(
            400,
            "unknown_event",
            f"Unknown event(s) {', '.join(unknown)[:200]}; subscribe to {', '.join(WEBHOOK_EVENTS)}.",
        )
    return list(dict.fromkeys(events))  # without duplicates, in the caller's order


def _encode_cursor(row: dict[str, Any]) -> str:
    raw = json.dumps([row["created_at"].isoformat(), row["id"]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


#: The id in a cursor: an endpoint's or a delivery's (the two lists that page).
_ROW_ID = re.compile(r"w[ed]_[0-9a-f]{24}")


def _decode_cursor(cursor: str | None) -> Position | None:
    if cursor is None:
        return None
    invalid = ApiError(400, "invalid_cursor", "cursor is not a next_cursor this API returned.")
    try:
        created_at, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(created_at, str) or not isinstance(row_id, str) or not _ROW_ID.fullmatch(row_id):
            raise invalid
        at = datetime.fromisoformat(created_at)
        if at.tzinfo is None:
            raise invalid
        # In UTC here: a time PostgreSQL cannot hold (an offset past year 1 or 9999) fails now.
        return at.astimezone(UTC), row_id
    except (ValueError, TypeError, OverflowError, RecursionError, binascii.Error):
        raise invalid from None


def _page(rows: list[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """Rows were fetched with limit + 1: the extra one only says there is a next page."""
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], _encode_cursor(rows[limit - 1])


def _cipher(gw: Gateway) -> CredentialCipher:
    """The cipher that seals secrets at rest: without it no secret is created (never in plain text)."""
    if gw.webhook_cipher is None:
        raise ApiError(
            503,
            "webhook_secrets_unavailable",
            "This server cannot encrypt webhook secrets (its operator has not set CRM_CREDENTIALS_KEY); "
            "nothing was stored.",
        )
    return gw.webhook_cipher


def _not_found(webhook_id: str) -> ApiError:
    return ApiError(404, "webhook_not_found", f"No webhook endpoint {webhook_id} in your organisation.")


async def _owned_endpoint(gw: Gateway, caller: Caller, webhook_id: str) -> dict[str, Any]:
    endpoint = await gw.webhooks.get_endpoint(gw.pool, caller.organization_id, webhook_id)
    if endpoint is None:
        raise _not_found(webhook_id)
    return endpoint


async def _check_endpoint_cap(gw: Gateway, caller: Caller) -> None:
    """409 once the organisation has as many live endpoints as allowed (deleted ones don't count).

    Checked before the insert, so two registrations at the same instant may pass the cap by one."""
    cap = gw.settings.webhook_max_endpoints_per_organization
    live = await gw.webhooks.count_live_endpoints(gw.pool, caller.organization_id)
    if live >= cap:
        raise ApiError(
            409,
            "webhook_endpoint_limit_reached",
            f"Your organisation already has {live} webhook endpoints, the most allowed ({cap}); "
            "delete one you no longer use (DELETE /v1/webhooks/{id}) first.",
        )


@router.post(
    "/v1/webhooks/register",
    status_code=201,
    response_model=WebhookEndpointWithSecret,
    responses=documented_errors(
        **_URL_ERRORS,
        unknown_event=(400, "unknown_event", "Unknown event(s) lead.created; subscribe to …"),
        invalid_secret=(400, "invalid_webhook_secret", "a secret of your own must be 24 to 200 characters …"),
        secrets_unavailable=_SECRETS_DOWN,
        endpoint_limit=(409, "webhook_endpoint_limit_reached", "Your organisation already has 20 …"),
    ),
)
async def register_webhook(
    body: RegisterWebhookRequest,
    caller: CallerDep,
    gw: GatewayDep,
) -> WebhookEndpointWithSecret:
    """Subscribe a URL to events. The answer holds the signing secret (yours, or one generated
    when you sent none): it is shown this once. Every delivery is signed with it the Standard
    Webhooks way (`webhook-id`, `webhook-timestamp`, `webhook-signature` headers)."""
    url = _checked_url(gw, body.url)
    events = _checked_events(body.events)
    await _check_endpoint_cap(gw, caller)
    cipher = _cipher(gw)
    if body.secret is None:
        secret = generate_secret()
    else:
        try:
            secret = check_secret(body.secret)
        except InvalidWebhookSecret as exc:
            raise ApiError(400, "invalid_webhook_secret", f"{exc}; omit it to have one generated.") from None
    endpoint_id = new_endpoint_id()
    endpoint = await gw.webhooks.create_endpoint(
        gw.pool,
        caller.organization_id,
        endpoint_id=endpoint_id,
        url=url,
        events=events,
        description=body.description,
        sealed_secret=seal(cipher, endpoint_id, secret),
        max_concurrency=body.max_concurrency,
    )
    return WebhookEndpointWithSecret.model_validate(endpoint | {"secret": secret})


@router.get("/v1/webhooks", response_model=WebhookEndpointList, responses=documented_errors())
async def list_webhooks(
    caller: CallerDep,
    gw: GatewayDep,
    limit: int = _LIMIT,
    cursor: str | None = _CURSOR,
) -> WebhookEndpointList:
    """Your organisation's webhook endpoints, newest first, without their secrets."""
    rows = await gw.webhooks.list_endpoints(
        gw.pool, caller.organization_id, limit=limit + 1, after=_decode_cursor(cursor)
    )
    page, next_cursor = _page(rows, limit)
    return WebhookEndpointList(
        data=[WebhookEndpoint.model_validate(r) for r in page],
        has_more=next_cursor is not None,
        next_cursor=next_cursor,
    )


@router.get(
    "/v1/webhooks/{webhook_id}",
    response_model=WebhookEndpoint,
    responses=documented_errors(not_found=_NOT_FOUND),
)
async def get_webhook(
    caller: CallerDep,
    gw: GatewayDep,
    webhook_id: str = _WEBHOOK_ID,
) -> WebhookEndpoint:
    """One endpoint. Its secret is never returned: rotate it if it was lost."""
    return WebhookEndpoint.model_validate(await _owned_endpoint(gw, caller, webhook_id))


@router.patch(
    "/v1/webhooks/{webhook_id}",
    response_model=WebhookEndpoint,
    responses=documented_errors(
        not_found=_NOT_FOUND,
        **_URL_ERRORS,
        unknown_event=(400, "unknown_event", "Unknown event(s) lead.created; subscribe to …"),
    ),
)
async def update_webhook(
    body: UpdateWebhookRequest,
    caller: CallerDep,
    gw: GatewayDep,
    webhook_id: str = _WEBHOOK_ID,
) -> WebhookEndpoint:
    """Change the URL, events, description, concurrency or status (`disabled` pauses deliveries,
    `active` resumes them). Fields left out are unchanged."""
    changes = {
        name: value
        for name, value in body.model_dump(exclude_unset=True).items()
        if value is not None or name == "description"
    }
    if "url" in changes:
        changes["url"] = _checked_url(gw, changes["url"])
    if "events" in changes:
        changes["events"] = _checked_events(changes["events"])
    if changes:
        endpoint = await gw.webhooks.update_endpoint(gw.pool, caller.organization_id, webhook_id, changes)
    else:
        endpoint = await gw.webhooks.get_endpoint(gw.pool, caller.organization_id, webhook_id)
    if endpoint is None:
        raise _not_found(webhook_id)
    return WebhookEndpoint.model_validate(endpoint)


@router.delete(
    "/v1/webhooks/{webhook_id}",
    status_code=204,
    response_class=Response,
    responses=documented_errors(not_found=_NOT_FOUND),
)
async def delete_webhook(
    caller: CallerDep,
    gw: GatewayDep,
    webhook_id: str = _WEBHOOK_ID,
) -> Response:
    """Stop deliveries to the endpoint for good. Its pending deliveries are given up; its
    delivery history is kept."""
    async with gw.pool.acquire() as conn:
        deleted = await gw.webhooks.delete_endpoint(conn, caller.organization_id, webhook_id)
    if not deleted:
        raise _not_found(webhook_id)
    return Response(status_code=204)


@router.post(
    "/v1/webhooks/{webhook_id}/rotate-secret",
    response_model=WebhookEndpointWithSecret,
    responses=documented_errors(not_found=_NOT_FOUND, secrets_unavailable=_SECRETS_DOWN),
)
async def rotate_webhook_secret(
    caller: CallerDep,
    gw: GatewayDep,
    webhook_id: str = _WEBHOOK_ID,
) -> WebhookEndpointWithSecret:
    """Replace the signing secret; the new one is shown this once. Until
    `previous_secret_expires_at` (`WEBHOOK_SECRET_OVERLAP_SECONDS`, 24 h by default) deliveries
    carry signatures with both secrets, so receivers can switch without losing any."""
    secret = generate_secret()
    endpoint = await gw.webhooks.rotate_secret(
        gw.pool,
        caller.organization_id,
        webhook_id,
        sealed_secret=seal(_cipher(gw), webhook_id, secret),
        overlap_seconds=gw.settings.webhook_secret_overlap_seconds,
    )
    if endpoint is None:
        raise _not_found(webhook_id)
    return WebhookEndpointWithSecret.model_validate(endpoint | {"secret": secret})


@router.post(
    "/v1/webhooks/{webhook_id}/test",
    status_code=202,
    response_model=DeliveryRequestAccepted,
    responses=documented_errors(
        not_found=_NOT_FOUND,
        disabled=(409, "webhook_disabled", "The endpoint is disabled; PATCH its status to active first."),
        bus_down=BUS_DOWN,
    ),
)
async def send_test_event(
    request: Request,
    caller: CallerDep,
    gw: GatewayDep,
    webhook_id: str = _WEBHOOK_ID,
) -> DeliveryRequestAccepted:
    """Send a `webhook.test` event to this endpoint now, signed like any other. The 202 means the
    delivery is stored and queued; follow it at `delivery_url`."""
    message_id, delivery_id = new_message_id(), new_delivery_id()
    payload = WebhookPayload(
        event=TEST_EVENT,
        timestamp=datetime.now(UTC).replace(microsecond=0),
        data={"webhook_id": webhook_id, "message": "A test event from Jorge Platform."},
    )
    event = _delivery_requested(request, caller, webhook_id, delivery_id, message_id, TEST_EVENT)

    async def write(conn: DbConnection) -> None:
        await _require_active(gw, conn, caller, webhook_id)
        await gw.webhooks.create_manual_delivery(
            conn,
            caller.organization_id,
            webhook_id,
            message_id=message_id,
            delivery_id=delivery_id,
            event_type=TEST_EVENT,
            payload=payload.model_dump(mode="json"),
        )

    await store_and_publish(
        gw, write, event_message(event, topic=gw.topics(WEBHOOK_DELIVERY_REQUESTED), key=webhook_id)
    )
    return _accepted(webhook_id, delivery_id, message_id, TEST_EVENT)


@router.get(
    "/v1/webhooks/{webhook_id}/deliveries",
    response_model=WebhookDeliveryList,
    responses=documented_errors(not_found=_NOT_FOUND),
)
async def list_deliveries(
    caller: CallerDep,
    gw: GatewayDep,
    webhook_id: str = _WEBHOOK_ID,
    status: DeliveryStatus | None = Query(default=None, description="Only deliveries in this status."),
    limit: int = _LIMIT,
    cursor: str | None = _CURSOR,
) -> WebhookDeliveryList:
    """The endpoint's deliveries, newest first: one per message, with its retry state."""
    await _owned_endpoint(gw, caller, webhook_id)
    rows = await gw.webhooks.list_deliveries(
        gw.pool, webhook_id, status=status, limit=limit + 1, after=_decode_cursor(cursor)
    )
    page, next_cursor = _page(rows, limit)
    return WebhookDeliveryList(
        data=[WebhookDelivery.model_validate(r) for r in page],
        has_more=next_cursor is not None,
        next_cursor=next_cursor,
    )


@router.get(
    "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}",
    response_model=WebhookDeliveryDetail,
    responses=documented_errors(
        not_found=_NOT_FOUND,
        no_delivery=(404, "delivery_not_found", "No delivery wd_… for this endpoint."),
    ),
)
async def get_delivery(
    caller: CallerDep,
    gw: GatewayDep,
    webhook_id: str = _WEBHOOK_ID,
    delivery_id: str = _DELIVERY_ID,
) -> WebhookDeliveryDetail:
    """One delivery with the payload sent and every attempt: trigger, time, duration, response
    code and the first 20 KB of the response body."""
    await _owned_endpoint(gw, caller, webhook_id)
    delivery = await gw.webhooks.get_delivery(gw.pool, webhook_id, delivery_id)
    if delivery is None:
        raise ApiError(404, "delivery_not_found", f"No delivery {delivery_id} for webhook {webhook_id}.")
    return WebhookDeliveryDetail.model_validate(delivery)


@router.post(
    "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryRequestAccepted,
    responses=documented_errors(
        not_found=_NOT_FOUND,
        no_delivery=(404, "delivery_not_found", "No delivery wd_… for this endpoint."),
        disabled=(409, "webhook_disabled", "The endpoint is disabled; PATCH its status to active first."),
        bus_down=BUS_DOWN,
    ),
)
async def redeliver(
    request: Request,
    caller: CallerDep,
    gw: GatewayDep,
    webhook_id: str = _WEBHOOK_ID,
    delivery_id: str = _DELIVERY_ID,
) -> DeliveryRequestAccepted:
    """Send the same message again (same `webhook-id`), now, whatever its status. The attempt is
    recorded with trigger `manual`."""

    async def write(conn: DbConnection) -> Any:
        await _require_active(gw, conn, caller, webhook_id)
        delivery = await gw.webhooks.request_redelivery(conn, webhook_id, delivery_id)
        if delivery is None:
            raise ApiError(404, "delivery_not_found", f"No delivery {delivery_id} for webhook {webhook_id}.")
        return delivery

    def redelivery_requested(delivery: Any) -> OutgoingMessage:
        event = _delivery_requested(
            request, caller, webhook_id, delivery_id, delivery["message_id"], delivery["event_type"]
        )
        return event_message(event, topic=gw.topics(WEBHOOK_DELIVERY_REQUESTED), key=webhook_id)

    delivery = await store_and_publish(gw, write, redelivery_requested)
    return _accepted(webhook_id, delivery_id, delivery["message_id"], delivery["event_type"])


async def _require_active(gw: Gateway, conn: DbConnection, caller: Caller, webhook_id: str) -> None:
    status = await gw.webhooks.endpoint_status(conn, caller.organization_id, webhook_id)
    if status is None:
        raise _not_found(webhook_id)
    if status != "active":
        raise ApiError(
            409, "webhook_disabled", f"Webhook {webhook_id} is disabled; PATCH its status to active first."
        )


def _delivery_requested(
    request: Request, caller: Caller, webhook_id: str, delivery_id: str, message_id: str, event_type: str
) -> WebhookDeliveryRequested:
    return WebhookDeliveryRequested(
        organization_id=caller.organization_id,
        correlation_id=request.state.request_id,
        payload=WebhookDeliveryRequestedPayload(
            delivery_id=delivery_id,
            endpoint_id=webhook_id,
            message_id=message_id,
            event_type=event_type,
            trigger="manual",
        ),
    )


def _accepted(webhook_id: str, delivery_id: str, message_id: str, event_type: str) -> DeliveryRequestAccepted:
    return DeliveryRequestAccepted(
        delivery_id=delivery_id,
        message_id=message_id,
        endpoint_id=webhook_id,
        event_type=event_type,
        delivery_url=f"/v1/webhooks/{webhook_id}/deliveries/{delivery_id}",
    )
