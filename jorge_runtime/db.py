"""The asyncpg pool and versioned SQL migrations."""

from __future__ import annotations

import json
import logging
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from jorge_runtime.observability.db_telemetry import TimedConnection

log = logging.getLogger(__name__)

#: A connection of its own or one borrowed from a pool: repositories take either.
DbConnection = asyncpg.Connection | PoolConnectionProxy
#: Anything a single statement can run on: a connection (inside a transaction) or the pool.
Executor = DbConnection | asyncpg.Pool

# Any fixed number works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK_ID = 4_711_2026


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _release_connection(conn: asyncpg.Connection) -> None:
    # Pooled connections never LISTEN, SET or take advisory locks here, so asyncpg's default
    # reset (a RESET ALL/UNLISTEN/unlock round trip on every release) is pure cost.
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


#: Bounds of every pool's statements and connection attempts: a frozen or restarting server makes
#: calls fail (an outage the callers know, see failures.py) instead of hanging for ever.
DEFAULT_COMMAND_TIMEOUT_SECONDS = 15.0
CONNECT_TIMEOUT_SECONDS = 5.0


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    command_timeout: float | None = DEFAULT_COMMAND_TIMEOUT_SECONDS,
    application_name: str | None = None,
) -> asyncpg.Pool:
    """Open a pool whose connections speak jsonb as Python objects. DSNs may use a socket dir.

    Each statement fails with TimeoutError after ``command_timeout`` seconds and each new
    connection after CONNECT_TIMEOUT_SECONDS; None lifts the statement bound (a bulk import).
    ``application_name`` names the connections in pg_stat_activity (which service holds them)."""
    pool = await asyncpg.create_pool(
        dsn,
        server_settings={"application_name": application_name} if application_name else None,
        min_size=min_size,
        max_size=max_size,
        command_timeout=command_timeout,
        timeout=CONNECT_TIMEOUT_SECONDS,
        init=_init_connection,
        reset=_release_connection,
        connection_class=TimedConnection,
    )
    assert pool is not None
    return pool


def migration_files() -> list[tuple[int, str, str]]:
    """Every migration shipped with the package as (version, name, sql), in order."""
    found = []
    for entry in resources.files("jorge_runtime.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(dsn: str) -> list[str]:
    """Apply pending migrations, each in its own transaction; return the names applied.

    An advisory lock makes concurrent starts (several replicas, `jorge up`) safe.
    """
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_ID)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        applied = []
        for version, name, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
                )
            log.info("migration applied", extra={"migration": name})
            applied.append(name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_ID)
        await conn.close()


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database (works for host:port and socket URLs)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def create_database(admin_url: str, name: str) -> None:
    """Create the empty database ``name`` on the server of ``admin_url``."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(admin_url: str, name: str) -> None:
    """Drop the database ``name`` if it exists, disconnecting whoever still uses it."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
