"""Every way a dependency fails answers 503 with the error model, never 500 (a chaos run saw a 500
when PostgreSQL restarted under load: a pooled connection still consuming the server's goodbye)."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.gateway.errors import install_error_handlers

OUTAGES = [
    asyncpg.exceptions.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.CrashShutdownError("terminating connection: another server process crashed"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    ConnectionRefusedError(111, "Connection refused"),
]


@pytest.mark.parametrize("failure", OUTAGES, ids=lambda e: type(e).__name__)
async def test_a_dependency_failing_is_a_503_with_retry_after(failure: Exception) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fails")
    async def fails() -> None:
        raise failure

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        response = await client.get("/fails")
    assert response.status_code == 503
    assert response.json()["error"] == "dependency_unavailable" and response.json()["message"]
    assert response.headers["retry-after"]
