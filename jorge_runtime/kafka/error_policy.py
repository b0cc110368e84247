"""The consumer error policy: poison goes to the dead letters, outages are waited out.

Installed as a broker middleware inside FastStream's acknowledgement middleware, which runs
with ``AckPolicy.NACK_ON_ERROR``: returning normally lets the offset be committed (with the
others handled, jorge_runtime/kafka/offset_commits.py), raising seeks back so the same message
is delivered again.

- An invalid message (it can never be processed as it is) is dead-lettered at once.
- Any other failure first asks whether a dependency (Kafka, PostgreSQL, Redis) is down. If one
  is, this is an outage: the message is redelivered after a pause, its tries are not counted,
  and it is never dead-lettered, however long the outage lasts. If none is, the failure counts,
  whatever the exception's class (a message that times out every time is poison too), and the
  ``max_attempts``-th counted failure dead-letters it. Counts live in PostgreSQL
  (jorge_runtime/kafka/attempts.py): a restart or a rebalance does not reset them.
- A dead letter is stored in the dead-letter table (`jorge dlq`) and published to the
  dead-letter topic, reason in its headers. Until both are done the offset is not committed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from faststream import BaseMiddleware
from faststream.message import StreamMessage
from pydantic import ValidationError

from jorge_runtime.failures import INFRASTRUCTURE_ERRORS
from jorge_runtime.kafka.attempts import AttemptStore, Position
from jorge_runtime.kafka.broker import OutgoingMessage
from jorge_runtime.kafka.dead_letters import add_dead_letter, identify
from jorge_runtime.observability.metrics import DEAD_LETTERED, MESSAGES_PROCESSED

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
#: Least pause before redelivering a message during an outage.
OUTAGE_PAUSE_SECONDS = 1.0

Publish = Callable[[OutgoingMessage], Awaitable[None]]
#: The names of the dependencies down right now (empty: none is).
OutageProbe = Callable[[], Awaitable[list[str]]]
_RECORDED = "_jorge_dead_letter_recorded"


def mark_recorded(error: BaseException) -> BaseException:
    """Say that the handler already stored this failure's dead letter (its own table row, e.g.
    with crm_sync's lane): the policy then only publishes it."""
    setattr(error, _RECORDED, True)
    return error


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


def _position(consumer: str, msg: StreamMessage[Any]) -> Position:
    record = msg.raw_message
    return Position(
        consumer,
        str(getattr(record, "topic", "")),
        int(getattr(record, "partition", -1)),
        int(getattr(record, "offset", -1)),
    )


def dead_letter_middleware(
    *,
    consumer: str,
    dead_letter_topic: str,
    publish: Publish,
    pool: Callable[[], asyncpg.Pool],
    outage: OutageProbe,
    max_attempts: int,
    backoff_seconds: float,
) -> type[BaseMiddleware]:
    """Build the middleware class for one consumer (its name goes in the dlq-consumer header and
    the table's consumer column). ``pool`` gives the worker's pool once it is open."""
    # Positions this process saw fail: only their success needs a delete.
    failed_here: set[Position] = set()

    async def send_to_dead_letter(
        msg: StreamMessage[Any], error: BaseException, attempts: int, cause: str
    ) -> None:
        record = msg.raw_message
        reason = describe(error)
        key = record.key.decode(errors="replace") if getattr(record, "key", None) else None
        headers = dead_letter_headers(msg, consumer=consumer, reason=reason, error=error, attempts=attempts)
        # Published first: should the row's insert fail, the redelivery publishes it again (at
        # least once on the topic) rather than leave a second row for a body without an event id.
        outgoing = OutgoingMessage(str(msg.message_id), dead_letter_topic, key, msg.body, headers)
        await publish(outgoing)
        if not getattr(error, _RECORDED, False):
            who = identify(msg.body)
            await add_dead_letter(
                pool(),
                consumer=consumer,
                origin_topic=str(getattr(record, "topic", "")),
                organization_id=who.organization_id,
                event_id=who.event_id,
                event_type=who.event_type,
                message_key=key,
                lane=None,
                reason=cause,
                detail=reason,
                attempts=attempts,
                headers={k: v for k, v in headers.items() if not k.startswith("dlq-")},
                body=msg.body,
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

    async def dead_letter_or_wait(
        msg: StreamMessage[Any], error: BaseException, attempts: int, cause: str
    ) -> None:
        """Dead-letter it; if Kafka or PostgreSQL fail meanwhile, pause before the redelivery
        (raised) so an outage does not spin on the same message."""
        try:
            await send_to_dead_letter(msg, error, attempts=attempts, cause=cause)
        except INFRASTRUCTURE_ERRORS as failure:
            log.warning(
                "dead letter not stored; the message will be redelivered",
                extra={"consumer": consumer, "error": describe(failure)},
            )
            await asyncio.sleep(max(backoff_seconds, OUTAGE_PAUSE_SECONDS))
            raise

    async def count_failure(at: Position, error: BaseException) -> tuple[int, list[str]]:
        """(tries so far, dependencies down): tries are counted only when nothing is down."""
        down = await outage()
        if down:
            return 0, down
        try:
            attempts = await AttemptStore(pool()).record_failure(at, describe(error))
        except INFRASTRUCTURE_ERRORS:
            return 0, ["postgresql"]  # went down since the probe: still an outage
        failed_here.add(at)
        return attempts, []

    async def forget(at: Position) -> None:
        if at in failed_here:
            failed_here.discard(at)
            try:
                await AttemptStore(pool()).forget(at)
            except INFRASTRUCTURE_ERRORS:
                # Harmless: the partition's next failure deletes the row (attempts.py).
                log.warning("attempt count not cleared", extra={"consumer": consumer, "topic": at.topic})

    class DeadLetterMiddleware(BaseMiddleware):
        async def consume_scope(
            self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
        ) -> Any:
            at = _position(consumer, msg)
            try:
                result = await call_next(msg)
            except INVALID_MESSAGE_ERRORS as error:
                await dead_letter_or_wait(msg, error, 1, "invalid_message")
                await forget(at)
                return None
            except asyncio.CancelledError:
                raise
            except Exception as error:
                attempts, down = await count_failure(at, error)
                if attempts >= max_attempts:
                    await dead_letter_or_wait(msg, error, attempts, "attempts_exhausted")
                    await forget(at)
                    return None
                MESSAGES_PROCESSED.labels(consumer, at.topic, "retried").inc()
                delay = min(backoff_seconds * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)
                if down:
                    delay = min(max(delay, OUTAGE_PAUSE_SECONDS), MAX_BACKOFF_SECONDS)
                log.warning(
                    "message will be redelivered",
                    extra={
                        "consumer": consumer,
                        "cause": f"outage: {', '.join(down)} down" if down else "handler",
                        "error": describe(error),
                        "attempt": attempts,
                        "retry_in_seconds": delay,
                    },
                    exc_info=None if down else error,
                )
                await asyncio.sleep(delay)
                raise
            await forget(at)
            MESSAGES_PROCESSED.labels(consumer, at.topic, "ok").inc()
            return result

    return DeadLetterMiddleware
