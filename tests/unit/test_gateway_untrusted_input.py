"""Input no model checks (a cursor, an idempotency fingerprint, a GHL webhook's body) gets a
clear 400 or is hashed as bytes, never a 500: each case here was a 500 found by hand-fuzzing."""

from __future__ import annotations

import base64
import json

import pytest

from services.gateway.errors import ApiError
from services.gateway.ghl_webhooks import parse_payload
from services.gateway.idempotency import fingerprint
from services.gateway.subscriptions import _decode_cursor

DEEP = b"[" * 5000 + b"]" * 5000


def cursor(*items: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(items)).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "bad",
    [
        cursor("0001-01-01T00:00:00+01:00", "we_" + "0" * 24),  # before year 1 in UTC
        cursor("9999-12-31T23:59:59-01:00", "we_" + "0" * 24),  # after 9999 in UTC
        cursor("2020-01-01T00:00:00+00:00", "\x00"),
        cursor("2020-01-01T00:00:00+00:00", "\ud800"),
        cursor("2020-01-01T00:00:00+00:00", 7),
        cursor("2020-01-01T00:00:00", "we_" + "0" * 24),  # no time zone
        "",
        "not base64 at all!",
    ],
)
def test_a_cursor_the_api_did_not_hand_out_is_a_400(bad: str) -> None:
    with pytest.raises(ApiError) as refused:
        _decode_cursor(bad)
    assert (refused.value.status, refused.value.error) == (400, "invalid_cursor")


def test_a_cursor_the_api_handed_out_reads_back() -> None:
    position = _decode_cursor(cursor("2026-12-05T10:00:00+01:00", "wd_" + "a" * 24))
    assert position is not None and position[0].isoformat() == "2026-12-05T09:00:00+00:00"


def test_a_body_nested_too_deep_to_parse_is_fingerprinted_as_bytes() -> None:
    assert fingerprint("POST", "/v1/webhooks/x/test", DEEP) != fingerprint(
        "POST", "/v1/webhooks/x/test", b"[]"
    )


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (DEEP, "invalid_json"),
        (b"[1]", "invalid_json"),
        (json.dumps({"type": "InboundMessage", "webhookId": "a\x00b"}).encode(), "invalid_payload"),
        (json.dumps({"type": "InboundMessage", "contactId": "\ud800"}).encode(), "invalid_payload"),
        (json.dumps({"locationId": "l", "\x00": 1}).encode(), "invalid_payload"),
    ],
)
def test_a_signed_ghl_body_that_cannot_be_stored_is_a_400(body: bytes, error: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_payload(body)
    assert (refused.value.status, refused.value.error) == (400, error)
