"""`Idempotency-Key` on POSTs: a retried request gets the first answer instead of running twice.

Keys are scoped per organisation and kept for IDEMPOTENCY_KEY_TTL_HOURS. The first request with
a key claims it (a row under a lease) after authentication and rate limits; its answer, status
and body, is recorded before it is sent. Then:

- same key, same request (method, path, JSON body, whatever its key order or spacing): the
  first answer again, with `Idempotent-Replayed: true`;
- same key, another request: 422 `idempotency_key_reused`;
- same key while the first is still running: the retry waits up to IDEMPOTENCY_WAIT_SECONDS
  for its answer, then gets 409 `idempotency_key_in_progress`;
- a first request that failed with 5xx (nothing accepted) frees the key, so the retry runs;
- an answer holding a signing secret is stored without it and never replayed: the retry gets
  409 `idempotency_key_secret_not_replayed` (a secret is shown once, and never kept in clear).

What accepts work (publishing: its transaction or its one statement) also marks the key committed:
if the gateway dies after that commit but before recording the answer, a retry is never run a
second time; it gets 409 `idempotency_key_outcome_unknown` and should read the resource.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jorge_runtime.db import DbConnection
from services.gateway.errors import ApiError

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
LEASE_SECONDS = 60.0  # longer than any request may run (?wait is at most 30 s)
_MAX_KEY_LENGTH = 255

_CLAIM = """
INSERT INTO idempotency_keys AS k (organization_id, idempotency_key, fingerprint, locked_until, expires_at)
VALUES ($1, $2, $3, now() + make_interval(secs => $4::float8), now() + make_interval(secs => $5::float8))
ON CONFLICT (organization_id, idempotency_key) DO UPDATE
   SET fingerprint = EXCLUDED.fingerprint, locked_until = EXCLUDED.locked_until,
       expires_at = EXCLUDED.expires_at, status = NULL, response = NULL, response_type = NULL,
       secret_withheld = false, committed_at = NULL, created_at = now()
 WHERE k.expires_at < now()
    OR (k.status IS NULL AND k.committed_at IS NULL AND k.locked_until < now()
        AND k.fingerprint = EXCLUDED.fingerprint)
RETURNING k.locked_until"""
_LOOKUP = """SELECT fingerprint, status, response, response_type, secret_withheld,
                    committed_at IS NOT NULL AS committed,
                    locked_until < now() AS lapsed
               FROM idempotency_keys WHERE organization_id = $1 AND idempotency_key = $2"""
# $1-$3 name this request's own claim (organisation, key, locked_until), never a later one.
_MARK_COMMITTED = """UPDATE idempotency_keys SET committed_at = now()
                      WHERE organization_id = $1 AND idempotency_key = $2 AND locked_until = $3"""
_FINISH = """UPDATE idempotency_keys SET status = $4, response = $5, response_type = $6, secret_withheld = $7
              WHERE organization_id = $1 AND idempotency_key = $2 AND locked_until = $3"""
_RELEASE = """DELETE FROM idempotency_keys
               WHERE organization_id = $1 AND idempotency_key = $2 AND locked_until = $3
                 AND committed_at IS NULL"""


@dataclass(frozen=True, slots=True)
class Claim:
    """This request's hold on its key (locked_until tells it apart from a later claim)."""

    organization_id: str
    key: str
    locked_until: datetime


class IdempotentReplay(Exception):
    """The key's first answer, to send again."""

    def __init__(self, status: int, body: bytes, media_type: str | None) -> None:
        self.status, self.body, self.media_type = status, body, media_type


#: The claim of the request being handled, for the transaction that accepts its work.
current_claim: ContextVar[Claim | None] = ContextVar("idempotency_claim", default=None)


def fingerprint(method: str, path: str, body: bytes) -> bytes:
    """What makes two requests "the same": method, path and the JSON body, key order aside."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):  # not JSON, or nested too deep to parse: the bytes decide
        canonical = body
    return hashlib.sha256(b"%s %s\n%s" % (method.encode(), path.encode(), canonical)).digest()


def _checked(key: str) -> str:
    if not 0 < len(key) <= _MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise ApiError(
            400, "invalid_idempotency_key", f"{HEADER} must be 1 to 255 printable ASCII characters."
        )
    return key


class IdempotencyStore:
    """PostgreSQL adapter of the keys and their recorded answers."""

    def __init__(self, pool: asyncpg.Pool, *, ttl_seconds: float, wait_seconds: float) -> None:
        self._pool = pool
        self._ttl = ttl_seconds
        self._wait = wait_seconds

    async def begin(self, organization_id: str, key: str, print_: bytes) -> Claim:
        """Claim the key, or raise the answer a retry gets (IdempotentReplay or ApiError)."""
        key = _checked(key)
        deadline = time.monotonic() + self._wait
        while True:
            locked_until = await self._pool.fetchval(
                _CLAIM, organization_id, key, print_, LEASE_SECONDS, self._ttl
            )
            if locked_until is not None:
                return Claim(organization_id, key, locked_until)
            row = await self._pool.fetchrow(_LOOKUP, organization_id, key)
            if row is None:
                continue  # the holder failed and freed it: claim again
            if bytes(row["fingerprint"]) != print_:
                raise ApiError(
                    422,
                    "idempotency_key_reused",
                    f"This {HEADER} was used with a different request (method, path or body); "
                    "use a new key for a new request.",
                )
            if row["status"] is not None and row["secret_withheld"]:
                raise _secret_not_replayed(bytes(row["response"]))
            if row["status"] is not None:
                raise IdempotentReplay(row["status"], bytes(row["response"]), row["response_type"])
            if row["committed"] and row["lapsed"]:
                raise ApiError(
                    409,
                    "idempotency_key_outcome_unknown",
                    "The first request with this key was accepted but its answer was lost; "
                    "read the resource it created instead of retrying.",
                )
            if time.monotonic() >= deadline:
                raise ApiError(
                    409,
                    "idempotency_key_in_progress",
                    "A request with this key is still being processed; retry shortly.",
                    {"Retry-After": "1"},
                )
            await asyncio.sleep(0.05)

    async def mark_committed(self, conn: DbConnection, claim: Claim) -> None:
        """In the transaction that accepts the work: the key's request has taken effect."""
        await conn.execute(_MARK_COMMITTED, claim.organization_id, claim.key, claim.locked_until)

    async def finish(self, claim: Claim, status: int, body: bytes, media_type: str | None) -> None:
        """Record the answer every retry with this key gets; an answer holding a signing secret
        is recorded without it (secrets are never stored in the clear to be replayed)."""
        withheld = _without_secret(body)
        own = (claim.organization_id, claim.key, claim.locked_until)
        await self._pool.execute(_FINISH, *own, status, withheld or body, media_type, withheld is not None)

    async def release(self, claim: Claim) -> None:
        """Free the key of a request that accepted nothing (5xx), so a retry runs."""
        await self._pool.execute(_RELEASE, claim.organization_id, claim.key, claim.locked_until)

    async def purge_expired(self, batch: int = 1000) -> int:
        """Delete up to ``batch`` expired keys; how many."""
        return int(
            await self._pool.fetchval(
                """WITH gone AS (DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
                       SELECT ctid FROM idempotency_keys WHERE expires_at < now() LIMIT $1)) RETURNING 1)
                   SELECT count(*) FROM gone""",
                batch,
            )
        )

    async def purge_forever(self, interval_seconds: float = 60.0) -> None:
        """Delete expired keys every interval (run as a task; any replica may)."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                while await self.purge_expired() > 0:
                    pass
            except Exception:
                log.warning("could not purge expired idempotency keys", exc_info=True)


def _without_secret(body: bytes) -> bytes | None:
    """The JSON answer without its top-level ``secret``, or None if it holds none."""
    if b'"secret"' not in body:
        return None
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    if not isinstance(answer, dict) or "secret" not in answer:
        return None
    return json.dumps({k: v for k, v in answer.items() if k != "secret"}).encode()


def _secret_not_replayed(stored: bytes) -> ApiError:
    resource = json.loads(stored).get("id", "")
    return ApiError(
        409,
        "idempotency_key_secret_not_replayed",
        f"The first request with this key succeeded ({resource}); its answer held a signing secret, "
        "which is shown only once and never stored to be replayed. Rotate the secret if it was lost.",
    )


async def claim_request(request: Request, store: IdempotencyStore, organization_id: str) -> None:
    """For a POST with Idempotency-Key: claim it for this request, or answer as a retry."""
    key = request.headers.get(HEADER)
    if key is None or request.method != "POST":
        return
    print_ = fingerprint("POST", request.url.path, await request.body())
    claim = await store.begin(organization_id, key, print_)
    request.state.idempotency = claim
    current_claim.set(claim)


class IdempotencyMiddleware:
    """Plain ASGI: records the answer of a request holding a key before sending it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def record_then_send(message: Message) -> None:
            claim: Claim | None = scope.get("state", {}).get("idempotency")
            if claim is None:
                await send(message)
                return
            held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                try:
                    await _settle(scope, claim, held)
                except Exception:  # the answer still goes out; a retry waits out the lease
                    log.warning("could not record the answer of an idempotent request", exc_info=True)
                for m in held:
                    await send(m)

        try:
            await self.app(scope, receive, record_then_send)
        except BaseException:
            claim = scope.get("state", {}).get("idempotency")
            if claim is not None and not held:
                with contextlib.suppress(Exception):
                    await _store(scope).release(claim)
            raise


def _store(scope: Scope) -> IdempotencyStore:
    store: IdempotencyStore = scope["app"].state.gateway.idempotency
    return store


async def _settle(scope: Scope, claim: Claim, messages: list[Message]) -> None:
    start = messages[0]
    status = int(start["status"])
    store = _store(scope)
    if status >= 500:
        await store.release(claim)
        return
    body = b"".join(m.get("body", b"") for m in messages[1:])
    media_type = next((v.decode() for k, v in start.get("headers", []) if k.lower() == b"content-type"), None)
    await store.finish(claim, status, body, media_type)


def install(app: FastAPI) -> None:
    """Answer retries with their first answer; record first answers (call once, in app.py)."""

    async def replay(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, IdempotentReplay)
        return Response(exc.body, exc.status, {REPLAYED_HEADER: "true"}, media_type=exc.media_type)

    app.add_exception_handler(IdempotentReplay, replay)
    app.add_middleware(IdempotencyMiddleware)
    _document_header(app)


_PARAMETER = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": "Makes a retry safe: the same key with the same request gets the first answer "
    "again (`Idempotent-Replayed: true`); with another request, 422. Kept 24 hours, per organisation.",
    "schema": {"type": "string", "minLength": 1, "maxLength": _MAX_KEY_LENGTH, "pattern": "^[ -~]+$"},
}


def _document_header(app: FastAPI) -> None:
    """Declare the optional header on every POST that honours it, in the OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for path, operations in schema.get("paths", {}).items():
                post = operations.get("post")
                if post is not None and path.startswith("/v1/") and path != "/v1/auth/token":
                    post.setdefault("parameters", []).append(_PARAMETER)
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]
