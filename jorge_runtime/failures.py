"""Which exceptions mean "a dependency is down" rather than "this request or message is wrong"."""

from __future__ import annotations

import asyncpg
import redis.exceptions
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from jorge_runtime.kafka.broker import PublishFailed

#: Nothing can succeed while these last: consumers wait and retry, the gateway answers 503.
INFRASTRUCTURE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    # PostgreSQL shutting down or crashed: the statement in flight gets one of these.
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    # A pooled connection reused while its protocol still consumes the error of a server going
    # away ("another operation is in progress"): seen when PostgreSQL restarts under load.
    asyncpg.exceptions.InternalClientError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    KafkaConnectionError,
    KafkaTimeoutError,
    PublishFailed,
)
