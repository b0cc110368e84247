"""`jorge purge`: delete what the retention settings say is old enough, now, and print counts."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from jorge_cli.state import settings_for_command
from jorge_runtime.db import create_pool
from jorge_runtime.retention.policy import RetentionPolicy, format_counts
from jorge_runtime.retention.purge import purge as run_purge
from jorge_runtime.settings import ConfigError, Settings

purge_tools = typer.Typer(no_args_is_help=True)


def _settings() -> Settings:
    try:
        settings = settings_for_command()
        settings.require("database_url")
    except ConfigError as exc:
        typer.echo(f"jorge: configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    return settings


async def _run(settings: Settings, dry_run: bool) -> dict[str, int]:
    assert settings.database_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        return await run_purge(pool, RetentionPolicy.from_settings(settings), dry_run=dry_run)
    finally:
        await pool.close()


@purge_tools.command("purge")
def purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be deleted.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Delete old idempotency records, webhook history, crm_sync steps and replayed dead letters
    (limits: RETENTION_*_DAYS), in batches of RETENTION_BATCH_SIZE; print the count per table.
    crm_sync also runs this every RETENTION_INTERVAL_SECONDS; running both at once is safe."""
    settings = _settings()
    counts = asyncio.run(_run(settings, dry_run))
    if as_json:
        typer.echo(json.dumps({"dry_run": dry_run, "deleted": counts}))
        return
    typer.echo("\n".join(format_counts(counts, dry_run=dry_run)))
