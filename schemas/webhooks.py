"""Webhook subscriptions: API models of /v1/webhooks, ids, secrets and the delivery-request event
(the URL policy is in schemas.webhook_urls).

Secrets follow Standard Webhooks: ``whsec_`` + base64 of 24 to 64 random bytes.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import EventEnvelope
from schemas.text import Text
from schemas.webhook_urls import URL_MAX_LENGTH

#: Events a subscriber can subscribe to (webhook.test is sent on request, to one endpoint).
WEBHOOK_EVENTS: tuple[str, ...] = (
    "lead.qualified",
    "buyer.matched",
    "seller.analyzed",
    "lead.follow_up_due",
)
TEST_EVENT = "webhook.test"

SECRET_PREFIX = "whsec_"  # noqa: S105  a public prefix, example or token type, not a secret
SECRET_MIN_BYTES = 24
SECRET_MAX_BYTES = 64
#: Stored response bodies of attempts are capped to this many bytes.
RESPONSE_BODY_MAX_BYTES = 20 * 1024

ENDPOINT_ID_PATTERN = r"^we_[0-9a-f]{24}$"
DELIVERY_ID_PATTERN = r"^wd_[0-9a-f]{24}$"

EndpointStatus = Literal["active", "disabled"]
DeliveryStatus = Literal["pending", "succeeded", "failed"]
AttemptTrigger = Literal["scheduled", "manual"]
EventName = Annotated[Text, Field(max_length=100, json_schema_extra={"enum": list(WEBHOOK_EVENTS)})]


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def new_endpoint_id() -> str:
    """An unguessable endpoint id (we_<24 hex>)."""
    return _new_id("we")


def new_message_id() -> str:
    """A message id, sent as `webhook-id` and unchanged on every retry (msg_<24 hex>)."""
    return _new_id("msg")


def new_delivery_id() -> str:
    """A delivery id: one message to one endpoint (wd_<24 hex>)."""
    return _new_id("wd")


#: ``new_delivery_id`` as PostgreSQL makes it, for statements that create deliveries per endpoint.
DELIVERY_ID_SQL = "'wd_' || substr(md5(gen_random_uuid()::text), 1, 24)"


def new_attempt_id() -> str:
    """An attempt id: one HTTP request of a delivery (wa_<24 hex>)."""
    return _new_id("wa")


# --- secrets ---------------------------------------------------------------------------------


class InvalidWebhookSecret(ValueError):
    """A secret that is neither `whsec_` + base64 of 24 to 64 bytes nor a secret of the
    subscriber's own of 24 to 200 characters (the message never quotes it)."""


RAW_SECRET_MIN_CHARS = 24
RAW_SECRET_MAX_CHARS = 200


def generate_secret() -> str:
    """A new endpoint secret: whsec_ + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def check_secret(secret: str) -> str:
    """The endpoint's signing secret in its `whsec_` form, or InvalidWebhookSecret.

    A `whsec_` secret must be a valid Standard Webhooks secret and is kept as it is. Any other
    secret is one the subscriber chose (24 to 200 characters): its UTF-8 bytes are the HMAC key
    as they are, so a receiver that signs with the secret it chose verifies our signatures, and
    its `whsec_` form (base64 of those bytes) is what Standard Webhooks libraries take.
    """
    if not secret.startswith(SECRET_PREFIX):
        return _raw_secret(secret)
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :].encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidWebhookSecret(
            f"the secret must be {SECRET_PREFIX} followed by standard base64"
        ) from None
    if not SECRET_MIN_BYTES <= len(key) <= SECRET_MAX_BYTES:
        raise InvalidWebhookSecret(
            f"the secret must encode {SECRET_MIN_BYTES} to {SECRET_MAX_BYTES} random bytes, not {len(key)}"
        )
    return secret


def _raw_secret(secret: str) -> str:
    if not RAW_SECRET_MIN_CHARS <= len(secret) <= RAW_SECRET_MAX_CHARS:
        raise InvalidWebhookSecret(
            f"a secret of your own must be {RAW_SECRET_MIN_CHARS} to {RAW_SECRET_MAX_CHARS} characters "
            f"long, not {len(secret)} (or send a {SECRET_PREFIX} secret)"
        )
    if not secret.isprintable():
        raise InvalidWebhookSecret("a secret of your own cannot contain control characters")
    return SECRET_PREFIX + base64.b64encode(secret.encode()).decode()


_ENDPOINT_EXAMPLE: dict[str, Any] = {
    "id": "we_5f0c6d2a9b1e4f7a8c3d2e1f",
    "url": "https://your-domain.com/webhooks/jorge",
    "events": ["lead.qualified", "buyer.matched", "seller.analyzed"],
    "description": "CRM bridge",
    "status": "active",
    "disabled_reason": None,
    "max_concurrency": 10,
    "failing_since": None,
    "previous_secret_expires_at": None,
    "created_at": "2026-11-23T10:00:00Z",
    "updated_at": "2026-11-23T10:00:00Z",
}
_SECRET_EXAMPLE = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105  a public prefix, example or token type, not a secret


class RegisterWebhookRequest(BaseModel):
    """Body of POST /v1/webhooks/register."""

    model_config = ConfigDict(
        str_strip_whitespace=True,
        extra="forbid",
        json_schema_extra={
            "example": {
                "url": "https://your-domain.com/webhooks/jorge",
                "events": ["lead.qualified", "buyer.matched", "seller.analyzed"],
                "secret": _SECRET_EXAMPLE,
            }
        },
    )

    url: Text = Field(
        min_length=1,
        max_length=URL_MAX_LENGTH,
        description="Where to POST events: https:// (http:// unless the server requires HTTPS), "
        "a public host, no credentials.",
    )
    events: list[EventName] = Field(
        min_length=1,
        max_length=len(WEBHOOK_EVENTS) * 2,
        description="Events to receive; others are answered 400 unknown_event.",
    )
    secret: str | None = Field(
        default=None,
        max_length=200,
        description="Your signing secret: `whsec_` + base64 of 24 to 64 random bytes, or any secret "
        "of your own of 24 to 200 characters (its bytes are the HMAC key; the answer shows its "
        "`whsec_` form). Omit it and one is generated.",
    )
    description: Text | None = Field(default=None, max_length=500)
    max_concurrency: int = Field(
        default=10, ge=1, le=50, description="At most this many deliveries in flight to this URL."
    )


class UpdateWebhookRequest(BaseModel):
    """Body of PATCH /v1/webhooks/{webhook_id}: only the fields sent change.

    `description: null` clears the description; null elsewhere means unchanged."""

    model_config = ConfigDict(
        str_strip_whitespace=True,
        extra="forbid",
        json_schema_extra={"example": {"events": ["lead.qualified"], "status": "disabled"}},
    )

    url: Text | None = Field(default=None, min_length=1, max_length=URL_MAX_LENGTH)
    events: list[EventName] | None = Field(default=None, min_length=1, max_length=len(WEBHOOK_EVENTS) * 2)
    status: EndpointStatus | None = Field(
        default=None, description="`disabled` pauses deliveries; `active` resumes them."
    )
    description: Text | None = Field(default=None, max_length=500)
    max_concurrency: int | None = Field(default=None, ge=1, le=50)


class WebhookEndpoint(BaseModel):
    """A subscription. Its secret is never returned after it is created or rotated."""

    model_config = ConfigDict(json_schema_extra={"example": _ENDPOINT_EXAMPLE})

    id: str
    url: str
    events: list[str]
    description: str | None = None
    status: EndpointStatus
    disabled_reason: str | None = Field(
        default=None,
        description="Why it is disabled: disabled_by_user, or set by the delivery engine "
        "(e.g. the receiver answered 410 or kept failing).",
    )
    max_concurrency: int
    failing_since: datetime | None = Field(
        default=None, description="Start of the current run of failed deliveries, if any."
    )
    previous_secret_expires_at: datetime | None = Field(
        default=None, description="After a rotation: until when the previous secret still signs."
    )
    created_at: datetime
    updated_at: datetime


class WebhookEndpointWithSecret(WebhookEndpoint):
    """A new or rotated subscription with its signing secret: the only time it is shown."""

    model_config = ConfigDict(json_schema_extra={"example": {**_ENDPOINT_EXAMPLE, "secret": _SECRET_EXAMPLE}})

    secret: str = Field(
        description="whsec_…: the secret in the form Standard Webhooks libraries take (for a secret "
        "of your own, base64 of its bytes); store it now, it is never shown again."
    )


class WebhookEndpointList(BaseModel):
    """A page of subscriptions, newest first."""

    data: list[WebhookEndpoint]
    has_more: bool
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page.")


class WebhookDelivery(BaseModel):
    """One message to one endpoint, with its retry state."""

    id: str
    endpoint_id: str
    message_id: str = Field(description="Sent as the `webhook-id` header; the same on every retry.")
    event_type: str
    status: DeliveryStatus
    attempt_count: int
    last_response_code: int | None = None
    next_attempt_at: datetime | None = Field(default=None, description="When a pending delivery is tried.")
    created_at: datetime
    updated_at: datetime


class WebhookAttempt(BaseModel):
    """One HTTP request of a delivery."""

    id: str
    attempt_number: int
    trigger: AttemptTrigger
    status: Literal["succeeded", "failed"]
    url: str
    started_at: datetime
    duration_ms: int | None = None
    response_status: int | None = None
    response_body: str | None = Field(default=None, description="First 20 KB of the response body.")
    error: str | None = Field(default=None, description="Why no response was received (timeout, refused, …).")


class WebhookDeliveryDetail(WebhookDelivery):
    """A delivery with the exact payload sent and every attempt, oldest first."""

    payload: dict[str, Any]
    attempts: list[WebhookAttempt]


class WebhookDeliveryList(BaseModel):
    """A page of deliveries, newest first."""

    data: list[WebhookDelivery]
    has_more: bool
    next_cursor: str | None = None


class DeliveryRequestAccepted(BaseModel):
    """202 answer of the test and redeliver actions: the delivery is pending and on its way."""

    delivery_id: str
    message_id: str
    endpoint_id: str
    event_type: str
    status: DeliveryStatus = "pending"
    delivery_url: str = Field(description="Where to watch the delivery and its attempts.")


class WebhookPayload(BaseModel):
    """The JSON body of every webhook (spec section 1.5): what happened, when, and its data."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "event": "lead.qualified",
                "timestamp": "2026-02-02T10:00:00Z",
                "data": {"lead_id": "lead-001", "qualification_id": "qual-001", "temperature": "hot"},
            }
        }
    )

    event: str = Field(
        description="lead.qualified, buyer.matched, seller.analyzed, lead.follow_up_due or webhook.test."
    )
    timestamp: datetime
    data: dict[str, Any]


# --- events ----------------------------------------------------------------------------------


class WebhookDeliveryRequestedPayload(BaseModel):
    """A delivery the engine must attempt now; the message itself is read from webhook_messages."""

    delivery_id: str
    endpoint_id: str
    message_id: str
    event_type: str
    trigger: AttemptTrigger = "manual"


class WebhookDeliveryRequested(EventEnvelope):
    """Someone asked for a test event or a redelivery (keyed by endpoint id)."""

    EVENT_TYPE: ClassVar[str] = "webhook.delivery_requested"
    event_type: Literal["webhook.delivery_requested"] = "webhook.delivery_requested"
    schema_version: Literal[1] = 1
    payload: WebhookDeliveryRequestedPayload


class WebhookEndpointDisabledPayload(BaseModel):
    """Which endpoint the delivery engine disabled, and why."""

    endpoint_id: str
    url: str
    reason: str = Field(description="endpoint_gone (it answered 410) or failing_too_long.")
    failing_since: datetime | None = None
    last_response_code: int | None = None


class WebhookEndpointDisabled(EventEnvelope):
    """The delivery engine disabled an endpoint; the organisation should be told (keyed by endpoint id)."""

    EVENT_TYPE: ClassVar[str] = "webhook.endpoint_disabled"
    event_type: Literal["webhook.endpoint_disabled"] = "webhook.endpoint_disabled"
    schema_version: Literal[1] = 1
    payload: WebhookEndpointDisabledPayload
