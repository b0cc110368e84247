"""What the gateway's routes depend on: its resources and the authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis
from fastapi import Request
from faststream.kafka import KafkaBroker

from jorge_runtime.broker import KafkaPublisher
from jorge_runtime.settings import Settings
from jorge_runtime.tenancy import Caller
from schemas.topics import TopicNames
from services.gateway.auth import Authenticator
from services.gateway.errors import ApiError
from services.gateway.repository import LeadRepository


@dataclass(slots=True)
class Gateway:
    """Everything the composition root built for the routes."""

    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    broker: KafkaBroker
    publisher: KafkaPublisher
    topics: TopicNames
    authenticator: Authenticator
    leads: LeadRepository


def resources(request: Request) -> Gateway:
    """The gateway's resources, set up by the lifespan."""
    return request.app.state.gateway


async def gateway(request: Request) -> Gateway:
    """Dependency form of resources(); async so FastAPI does not hand it to a thread."""
    return resources(request)


_CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def authenticated_caller(request: Request) -> Caller:
    """Resolve `Authorization: Bearer <api key>` to its organisation, or answer 401."""
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise ApiError(
            401, "missing_credentials", "Send your API key as `Authorization: Bearer <key>`.", _CHALLENGE
        )
    caller = await resources(request).authenticator.authenticate(credentials.strip())
    if caller is None:
        raise ApiError(401, "invalid_api_key", "The API key is unknown or has been revoked.", _CHALLENGE)
    return caller
