"""How often each message failed, kept in PostgreSQL so restarts and rebalances do not reset it.

A message is identified by consumer, topic, partition and offset. With NACK_ON_ERROR a partition
is consumed in order, so a failure at an offset means every older offset of that partition was
committed: recording it also deletes their rows, which bounds the table to about one row per
partition even when a process dies between a failure and the success that would clear it.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class Position:
    """Where one message sits, as one consumer sees it."""

    consumer: str
    topic: str
    partition: int
    offset: int


class AttemptStore:
    """Failed tries per message, in the consumer_attempts table."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record_failure(self, at: Position, error: str) -> int:
        """Count one more failed try of this message; how many it has had so far."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """DELETE FROM consumer_attempts
                    WHERE consumer = $1 AND topic = $2 AND partition = $3 AND "offset" < $4""",
                at.consumer, at.topic, at.partition, at.offset,
            )  # fmt: skip
            attempts: int = await conn.fetchval(
                """INSERT INTO consumer_attempts (consumer, topic, partition, "offset", attempts, last_error)
                       VALUES ($1, $2, $3, $4, 1, $5)
                   ON CONFLICT (consumer, topic, partition, "offset") DO UPDATE
                       SET attempts = consumer_attempts.attempts + 1, last_error = $5, updated_at = now()
                   RETURNING attempts""",
                at.consumer, at.topic, at.partition, at.offset, error[:500],
            )  # fmt: skip
        return attempts

    async def forget(self, at: Position) -> None:
        """The message succeeded or was dead-lettered: its count is no longer needed."""
        await self._pool.execute(
            """DELETE FROM consumer_attempts
                WHERE consumer = $1 AND topic = $2 AND partition = $3 AND "offset" = $4""",
            at.consumer, at.topic, at.partition, at.offset,
        )  # fmt: skip
