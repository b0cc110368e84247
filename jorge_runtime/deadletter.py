"""The consumer error policy: invalid messages go to the dead-letter topic, failures retry.

Installed as a broker middleware inside FastStream's acknowledgement middleware, which runs
with ``AckPolicy.NACK_ON_ERROR``: returning normally commits the offset, raising seeks back
so the same message is delivered again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from faststream import BaseMiddleware
from faststream.message import StreamMessage
from pydantic import ValidationError

from jorge_runtime.broker import OutgoingMessage
from jorge_runtime.failures import INFRASTRUCTURE_ERRORS
from jorge_runtime.metrics import DEAD_LETTERED, MESSAGES_PROCESSED

log = logging.getLogger(__name__)


class PermanentError(Exception):
    """A message that can never be processed as it is; it goes to the dead-letter topic."""


# No retry can fix these: the message itself is wrong.
INVALID_MESSAGE_ERRORS: tuple[type[BaseException], ...] = (
    ValidationError,
    json.JSONDecodeError,
    UnicodeDecodeError,
    PermanentError,
)
MAX_BACKOFF_SECONDS = 30.0

Publish = Callable[[OutgoingMessage], Awaitable[None]]


def dead_letter_headers(
    msg: StreamMessage[Any], *, consumer: str, reason: str, error: BaseException, attempts: int
) -> dict[str, str]:
    """The original headers plus where the message came from and why it was dead-lettered."""
    record = msg.raw_message
    headers = {
        k: v.decode(errors="replace") if isinstance(v, bytes) else str(v)
        for k, v in (msg.headers or {}).items()
    }
    headers.update(
        {
            "dlq-reason": reason[:1000],
            "dlq-error-type": type(error).__name__,
            "dlq-consumer": consumer,
            "dlq-origin-topic": str(getattr(record, "topic", "")),
            "dlq-origin-partition": str(getattr(record, "partition", "")),
            "dlq-origin-offset": str(getattr(record, "offset", "")),
            "dlq-attempts": str(attempts),
            "dlq-failed-at": datetime.now(UTC).isoformat(),
        }
    )
    return headers


def describe(error: BaseException) -> str:
    """A short reason for humans, without echoing the payload (it may hold personal data)."""
    if isinstance(error, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors()[:5]
        )
        return f"invalid message: {problems}"
    if isinstance(error, json.JSONDecodeError | UnicodeDecodeError):
        return f"undecodable message: {type(error).__name__}"
    return f"{type(error).__name__}: {error}"[:500]


def dead_letter_middleware(
    *, consumer: str, dead_letter_topic: str, publish: Publish, max_attempts: int, backoff_seconds: float
) -> type[BaseMiddleware]:
    """Build the middleware class for one consumer (its name goes in the dlq-consumer header)."""
    failures: dict[tuple[str, int, int], int] = {}

    async def send_to_dead_letter(
        msg: StreamMessage[Any], error: BaseException, attempts: int, cause: str
    ) -> None:
        record = msg.raw_message
        reason = describe(error)
        await publish(
            OutgoingMessage(
                message_id=str(msg.message_id),
                topic=dead_letter_topic,
                key=record.key.decode(errors="replace") if getattr(record, "key", None) else None,
                body=msg.body,
                headers=dead_letter_headers(
                    msg, consumer=consumer, reason=reason, error=error, attempts=attempts
                ),
            )
        )
        # The reason label is a fixed word: the free-text reason goes to the headers and the log.
        DEAD_LETTERED.labels(consumer, cause).inc()
        MESSAGES_PROCESSED.labels(consumer, str(getattr(record, "topic", "")), "dead_lettered").inc()
        log.error(
            "message dead-lettered",
            extra={
                "consumer": consumer,
                "reason": reason,
                "origin_topic": getattr(record, "topic", None),
                "origin_offset": getattr(record, "offset", None),
                "attempts": attempts,
            },
        )

    class DeadLetterMiddleware(BaseMiddleware):
        async def consume_scope(
            self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
        ) -> Any:
            record = msg.raw_message
            position = (
                getattr(record, "topic", ""),
                getattr(record, "partition", -1),
                getattr(record, "offset", -1),
            )
            try:
                result = await call_next(msg)
            except INVALID_MESSAGE_ERRORS as error:
                failures.pop(position, None)
                await send_to_dead_letter(msg, error, attempts=1, cause="invalid_message")
                return None
            except asyncio.CancelledError:
                raise
            except Exception as error:
                attempts = failures.get(position, 0) + 1
                outage = isinstance(error, INFRASTRUCTURE_ERRORS)
                if not outage and attempts >= max_attempts:
                    failures.pop(position, None)
                    await send_to_dead_letter(msg, error, attempts=attempts, cause="attempts_exhausted")
                    return None
                failures[position] = attempts
                MESSAGES_PROCESSED.labels(consumer, position[0], "retried").inc()
                delay = min(backoff_seconds * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS)
                log.warning(
                    "message will be redelivered",
                    extra={
                        "consumer": consumer,
                        "cause": "infrastructure" if outage else "handler",
                        "error": describe(error),
                        "attempt": attempts,
                        "retry_in_seconds": delay,
                    },
                    exc_info=None if outage else error,
                )
                await asyncio.sleep(delay)
                raise
            failures.pop(position, None)
            MESSAGES_PROCESSED.labels(consumer, position[0], "ok").inc()
            return result

    return DeadLetterMiddleware
