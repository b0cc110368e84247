"""`jorge catalog`: import an MLS export into an organisation's property catalog, or the demo one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import asyncpg
import typer

from jorge_runtime.catalog_import import ImportCounts, detect_format, load_rows, parse_catalog
from jorge_runtime.db import create_pool

T = TypeVar("T")
DEFAULT_ORGANIZATION = "demo"
_SHOWN_ERRORS = 50

catalog = typer.Typer(
    help="Load listings and closed sales (RESO column names, CSV or JSON Lines) into the catalog.",
    no_args_is_help=True,
)
_ORGANIZATION = typer.Option("--organization", "-o", help="Whose catalog (default: the demo organisation).")


def _with_pool(work: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    from jorge_cli.state import settings_for_command

    settings = settings_for_command()
    settings.require("database_url")

    async def run() -> T:
        pool = await create_pool(settings.database_url or "", min_size=1, max_size=2)
        try:
            return await work(pool)
        finally:
            await pool.close()

    return asyncio.run(run())


async def _require_organization(pool: asyncpg.Pool, organization_id: str) -> None:
    if not await pool.fetchval("SELECT true FROM organizations WHERE organization_id = $1", organization_id):
        typer.echo(
            f"jorge: no organisation {organization_id!r}; create it with `jorge orgs create`", err=True
        )
        raise typer.Exit(2)


def _counts(counts: ImportCounts) -> str:
    return f"{counts.inserted} inserted, {counts.updated} updated, {counts.unchanged} unchanged"


@catalog.command("import")
def import_file(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV or JSON Lines.")
    ],
    organization_id: Annotated[str, _ORGANIZATION] = DEFAULT_ORGANIZATION,
) -> None:
    """Validate every row and upsert the good ones by ListingId; a re-import changes nothing.

    Bad rows are listed with their line number and reason (exit code 1 if any); columns that
    are not catalog fields are ignored, with one note."""
    text = file.read_text(encoding="utf-8-sig")
    parsed = parse_catalog(text, detect_format(file, text))
    if parsed.ignored_columns:
        names = sorted(parsed.ignored_columns)
        more = f" and {len(names) - 10} more" if len(names) > 10 else ""
        typer.echo(
            f"note: ignored {len(names)} column(s) the catalog does not use: {', '.join(names[:10])}{more}"
        )
    for error in parsed.errors[:_SHOWN_ERRORS]:
        typer.echo(f"line {error.line}: {error.reason}", err=True)
    if len(parsed.errors) > _SHOWN_ERRORS:
        typer.echo(f"... and {len(parsed.errors) - _SHOWN_ERRORS} more bad rows", err=True)
    if parsed.duplicates:
        typer.echo(
            f"note: {parsed.duplicates} ListingId(s) appeared more than once; the last row of each won"
        )

    async def work(pool: asyncpg.Pool) -> ImportCounts:
        await _require_organization(pool, organization_id)
        async with pool.acquire() as conn:
            return await load_rows(conn, organization_id, parsed.rows)

    counts = _with_pool(work)
    typer.echo(
        f"{file.name}: {len(parsed.rows)} valid row(s), {len(parsed.errors)} rejected; {_counts(counts)} "
        f"(organisation {organization_id})"
    )
    if parsed.errors:
        raise typer.Exit(1)


@catalog.command("demo")
def load_demo(organization_id: Annotated[str, _ORGANIZATION] = DEFAULT_ORGANIZATION) -> None:
    """Load the generated demo catalog (Rancho Cucamonga and nearby); `jorge up` does it itself."""
    from jorge_cli.demo_catalog import load_demo_catalog

    async def work(pool: asyncpg.Pool) -> ImportCounts:
        await _require_organization(pool, organization_id)
        return await load_demo_catalog(pool, organization_id)

    typer.echo(f"demo catalog: {_counts(_with_pool(work))} (organisation {organization_id})")
