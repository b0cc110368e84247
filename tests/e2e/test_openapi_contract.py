"""Schemathesis over the served OpenAPI document: no 5xx, no answer that contradicts the schema."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncpg

from schemas.limits import LIMITS
from services.gateway.tenancy import TenancyStore
from tests.support.services import ServiceProcess

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


async def test_the_api_honours_its_openapi_document(gateway: ServiceProcess, pool: asyncpg.Pool) -> None:
    tenancy = TenancyStore(pool)
    await tenancy.create_organization("org-contract", "Contract Realty")
    for name in LIMITS:  # the fuzzer sends hundreds of requests a second
        await tenancy.set_rate_limit("org-contract", name, 10_000_000)
    key = (await tenancy.issue_key("org-contract", "schemathesis")).secret
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS), "--config-file", str(Path(__file__).with_name("schemathesis.toml")),
        "run", f"{gateway.base_url}/openapi.json",
        "--header", f"Authorization: Bearer {key}",
        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                    "response_schema_conformance,response_headers_conformance",
        "--phases", "examples,coverage,fuzzing", "--max-examples", "10", "--seed", "20261123",
        "--workers", "1", "--request-timeout", "10", "--max-time", "60",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    report = output.decode(errors="replace")
    assert process.returncode == 0, report[-6000:]
