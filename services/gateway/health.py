"""Gateway health routes: liveness (never a dependency check) and readiness of its dependencies."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from jorge_runtime.observability.health import HealthReport, check_dependencies, check_gateway_readiness
from services.gateway.dependencies import GatewayDep

router = APIRouter()


@router.get("/health", tags=["health"])
@router.get("/v1/health", tags=["health"], summary="Health (the same as /health, under /v1)")
async def health() -> dict[str, str]:
    """Liveness: the process answers. Never a dependency check, so an outage restarts nothing.
    `/v1/health` is the same check under the API's prefix, as deployment runbooks call it."""
    return {"status": "ok", "service": "gateway"}


@router.get(
    "/health/ready", response_model=HealthReport, tags=["health"], responses={503: {"model": HealthReport}}
)
async def health_ready(gw: GatewayDep) -> JSONResponse:
    """Readiness: Kafka and PostgreSQL reachable, and Redis only when rate limits fail closed."""
    report = await check_gateway_readiness(
        broker=gw.broker,
        pool=gw.pool,
        redis=gw.redis,
        redis_required=gw.settings.rate_limit_fail_mode == "closed",
    )
    return JSONResponse(report.model_dump(mode="json"), status_code=200 if report.status == "ok" else 503)


@router.get(
    "/health/detailed", response_model=HealthReport, tags=["health"], responses={503: {"model": HealthReport}}
)
async def health_detailed(gw: GatewayDep) -> JSONResponse:
    """Kafka, PostgreSQL and Redis, each checked with its latency; 503 when any is down."""
    report = await check_dependencies("gateway", broker=gw.broker, pool=gw.pool, redis=gw.redis)
    return JSONResponse(report.model_dump(mode="json"), status_code=200 if report.status == "ok" else 503)
