"""`jorge catalog`: import an MLS export into an organisation's property catalog, or the demo one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import asyncpg
import typer

from jorge_runtime.catalog.importer import (
    DEFAULT_MAX_BAD_SHARE,
    DEFAULT_MAX_WITHDRAW_SHARE,
    ImportCounts,
    SnapshotOutcome,
    detect_format,
    load_rows,
    parse_catalog,
    snapshot_policy,
)
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
        # An import is one COPY of the whole file: no statement bound.
        pool = await create_pool(settings.database_url or "", min_size=1, max_size=2, command_timeout=None)
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
    text = f"{counts.inserted} inserted, {counts.updated} updated, {counts.unchanged} unchanged"
    return text if counts.snapshot is None else f"{text}, {counts.snapshot.withdrawn} withdrawn"


def _report_snapshot(outcome: SnapshotOutcome, *, bad_rows: bool) -> None:
    if outcome.refusal is None:
        if outcome.withdrawn:
            typer.echo(
                f"snapshot: {outcome.withdrawn} of the {outcome.on_market} listing(s) on the market "
                "were missing from the file and are now Withdrawn"
            )
        return
    if not outcome.missing:
        typer.echo(f"snapshot not applied: {outcome.refusal}; no listing was missing anyway", err=True)
        return
    hint = (
        "fix the rows, or raise --max-bad-share"
        if bad_rows
        else "check that the export is complete; if it is, run again with a higher --max-withdraw-share"
    )
    stay = f"the {outcome.missing} listing(s) missing from the file stay on the market"
    typer.echo(f"snapshot not applied: {outcome.refusal}; {stay} ({hint})", err=True)


@catalog.command("import")
def import_file(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV or JSON Lines.")
    ],
    organization_id: Annotated[str, _ORGANIZATION] = DEFAULT_ORGANIZATION,
    snapshot: Annotated[
        bool,
        typer.Option(
            "--snapshot",
            help="The file is the complete active and pending inventory: on-market listings "
            "missing from it are taken off the market (set to Withdrawn; closed sales are never touched).",
        ),
    ] = False,
    max_withdraw_share: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="With --snapshot: the largest share of the listings on the market one file may take "
            f"off it; more and nothing is withdrawn (default {DEFAULT_MAX_WITHDRAW_SHARE}).",
        ),
    ] = None,
    max_bad_share: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="With --snapshot: withdraw nothing when more than this share of the file's rows "
            f"were rejected (default {DEFAULT_MAX_BAD_SHARE}).",
        ),
    ] = None,
) -> None:
    """Validate every row and upsert the good ones by ListingId; a re-import changes nothing.

    Bad rows are listed with their line number and reason (exit code 1 if any); columns that
    are not catalog fields are ignored, with one note. With --snapshot, a snapshot that is not
    applied (too many bad rows, too many listings missing) also exits 1, after loading the
    good rows."""
    if not snapshot and (max_withdraw_share is not None or max_bad_share is not None):
        typer.echo("jorge: --max-withdraw-share and --max-bad-share only apply with --snapshot", err=True)
        raise typer.Exit(2)
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

    policy = None
    if snapshot:
        bad_share = DEFAULT_MAX_BAD_SHARE if max_bad_share is None else max_bad_share
        withdraw_share = DEFAULT_MAX_WITHDRAW_SHARE if max_withdraw_share is None else max_withdraw_share
        policy = snapshot_policy(parsed, max_bad_share=bad_share, max_withdraw_share=withdraw_share)

    async def work(pool: asyncpg.Pool) -> ImportCounts:
        await _require_organization(pool, organization_id)
        async with pool.acquire() as conn:
            return await load_rows(conn, organization_id, parsed.rows, snapshot=policy)

    counts = _with_pool(work)
    typer.echo(
        f"{file.name}: {len(parsed.rows)} valid row(s), {len(parsed.errors)} rejected; {_counts(counts)} "
        f"(organisation {organization_id})"
    )
    if counts.snapshot is not None:
        _report_snapshot(counts.snapshot, bad_rows=policy is not None and policy.refusal is not None)
    if parsed.errors or (counts.snapshot is not None and counts.snapshot.refusal is not None):
        raise typer.Exit(1)


@catalog.command("demo")
def load_demo(organization_id: Annotated[str, _ORGANIZATION] = DEFAULT_ORGANIZATION) -> None:
    """Load the generated demo catalog (Rancho Cucamonga and nearby); `jorge up` does it itself."""
    from jorge_cli.demo_catalog import load_demo_catalog

    async def work(pool: asyncpg.Pool) -> ImportCounts:
        await _require_organization(pool, organization_id)
        return await load_demo_catalog(pool, organization_id)

    typer.echo(f"demo catalog: {_counts(_with_pool(work))} (organisation {organization_id})")
