"""The webhook sender against a real HTTP server on loopback: what it sends, what it reads back,
and the addresses it refuses before connecting."""

from __future__ import annotations

import gc
import warnings

import pytest

from schemas.webhook_urls import parse_subnets
from schemas.webhooks import RESPONSE_BODY_MAX_BYTES
from services.crm_sync.webhook_delivery.sender import USER_AGENT, WebhookSender
from tests.support.webhook_receiver import Answer, Receiver


def sender(allowed: str = "127.0.0.0/8") -> WebhookSender:
    return WebhookSender(
        allowed=parse_subnets(allowed), attempt_timeout=5.0, connect_timeout=2.0, require_https=False
    )


async def test_posts_the_body_and_headers_and_reads_at_most_20_kb_of_the_answer() -> None:
    big = b"x" * (RESPONSE_BODY_MAX_BYTES * 5)
    engine = sender()
    try:
        async with Receiver(lambda n, r: Answer(503, {"retry-after": "7"}, big)) as rx:
            result = await engine.send(rx.url("/hook?token=t"), b'{"a":1}', {"webhook-id": "msg_1"})
    finally:
        await engine.aclose()
    assert (result.status_code, result.retry_after, result.error) == (503, "7", None)
    assert result.body is not None and len(result.body) == RESPONSE_BODY_MAX_BYTES
    [request] = rx.requests
    assert (request.method, request.path, request.body) == ("POST", "/hook?token=t", b'{"a":1}')
    assert request.headers["webhook-id"] == "msg_1"
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept-encoding"] == "identity"  # the answer's bytes are kept as sent


async def test_a_pool_resized_while_in_use_is_closed_with_the_rest() -> None:
    engine = sender()
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        async with Receiver() as rx:
            first = await engine.send(rx.url(), b"{}", {}, pool_key="e1", pool_size=2)
            second = await engine.send(rx.url(), b"{}", {}, pool_key="e1", pool_size=5)  # retires the first
            await engine.aclose()
        del engine
        gc.collect()
    assert (first.status_code, second.status_code) == (200, 200)
    assert [str(w.message) for w in warned if "nclosed" in str(w.message)] == []


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",  # a literal is never resolved: checked as written
        "[::1]",
        "[::ffff:127.0.0.1]",
        "localhost",  # resolved, then checked
        "127.1",  # legacy forms some resolvers map to 127.0.0.1
        "2130706433",
    ],
)
async def test_a_non_public_host_is_refused_before_connecting(host: str) -> None:
    engine = sender(allowed="")  # production: nothing private allowed
    try:
        async with Receiver() as rx:
            result = await engine.send(f"http://{host}:{rx.port}/hook", b"{}", {})
    finally:
        await engine.aclose()
    assert result.status_code is None
    assert result.error is not None and result.error.startswith(("address not allowed", "refused"))
    assert rx.requests == []


async def test_a_connection_refused_is_a_failure_not_an_exception() -> None:
    engine = sender()
    try:
        async with Receiver() as rx:
            port = rx.port
        result = await engine.send(f"http://127.0.0.1:{port}/hook", b"{}", {})
    finally:
        await engine.aclose()
    assert result.status_code is None and result.error is not None and not result.timed_out
