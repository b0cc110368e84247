"""`jorge eval` and `jorge backfill`: measure the qualification engines, re-qualify stored leads."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from jorge_runtime.settings import ConfigError, Settings

qualifier_tools = typer.Typer(no_args_is_help=True)


def _settings() -> Settings:
    from jorge_cli.state import settings_for_command

    return settings_for_command()


def _has_key(settings: Settings) -> bool:
    return settings.anthropic_api_key is not None and bool(settings.anthropic_api_key.get_secret_value())


@qualifier_tools.command("eval")
def evaluate_engines(
    engine: Annotated[
        str, typer.Option(help="rules, claude or all (claude needs ANTHROPIC_API_KEY).")
    ] = "all",
    file: Annotated[Path | None, typer.Option(help="A JSONL eval set (default: the shipped one).")] = None,
    misses: Annotated[bool, typer.Option(help="List every case an engine got wrong.")] = False,
    split: Annotated[str, typer.Option(help="dev, heldout or all (each split scored apart).")] = "all",
) -> None:
    """Print each engine's intent accuracy, temperature agreement, intent confusion and time per lead.

    Every split of the set is scored apart: ``dev`` is what the rules were tuned on, ``heldout``
    was never tuned on and is the figure to trust.
    """
    from jorge_runtime.flags import FeatureFlags
    from services.qualifier.claude import ClaudeConfig, ClaudeQualificationEngine, create_client
    from services.qualifier.engine import QualificationEngine
    from services.qualifier.evaluation import (
        LABELLED_ON,
        SPLITS,
        evaluate_splits,
        format_scores,
        load_eval_set,
    )
    from services.qualifier.rules import RulesQualificationEngine

    settings = _settings()
    if engine not in ("rules", "claude", "all"):
        raise typer.BadParameter("choose rules, claude or all", param_hint="--engine")
    if split != "all" and split not in SPLITS:
        raise typer.BadParameter(f"choose {', '.join(SPLITS)} or all", param_hint="--split")
    if engine == "claude" and not _has_key(settings):
        raise ConfigError("ANTHROPIC_API_KEY is not set: the Claude engine cannot be evaluated")
    cases = [c for c in load_eval_set(file) if split in ("all", c.split)]
    engines: list[tuple[str, QualificationEngine]] = []
    if engine in ("rules", "all"):
        engines.append(("rules-v1", RulesQualificationEngine(today=lambda: LABELLED_ON)))
    if engine in ("claude", "all") and _has_key(settings):
        claude = ClaudeQualificationEngine(
            create_client(settings),
            ClaudeConfig.from_settings(settings),
            FeatureFlags.from_settings(settings),
            today=lambda: LABELLED_ON,
        )
        engines.append(("claude", claude))

    async def run() -> str:
        scores = [
            score
            for name, e in engines
            for score in await evaluate_splits(e, cases, name, settings.claude_max_concurrency)
        ]
        for _, e in engines:
            close = getattr(e, "aclose", None)
            if close is not None:
                await close()
        return format_scores(scores, show_misses=misses)

    typer.echo(f"{len(cases)} labelled leads; the rules engine's time per lead aims at < 50 ms")
    typer.echo(asyncio.run(run()))
    if engine == "all" and not _has_key(settings):
        typer.echo("\nclaude: skipped (ANTHROPIC_API_KEY is not set); rules-v1 is the baseline to beat")


@qualifier_tools.command("backfill")
def backfill(
    organization: Annotated[str | None, typer.Option(help="Only this organisation's leads.")] = None,
    engine: Annotated[
        str, typer.Option(help="Re-qualify leads last qualified by this engine; 'any' for all.")
    ] = "rules-v1",
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many leads.")] = 1000,
    batch_id: Annotated[str | None, typer.Option(help="Collect this submitted batch instead.")] = None,
    poll_seconds: Annotated[float, typer.Option(min=0.01, help="Seconds between status polls.")] = 30.0,
    wait: Annotated[bool, typer.Option(help="Wait for the batch and store its results.")] = True,
) -> None:
    """Re-qualify stored leads with Claude through the Message Batches API (50 % cheaper)."""
    from jorge_runtime.db import create_pool
    from jorge_runtime.flags import FeatureFlags
    from services.qualifier import backfill as work
    from services.qualifier.claude import ClaudeConfig, ClaudeQualificationEngine, create_client

    settings = _settings()
    settings.require("database_url")
    if not _has_key(settings):
        raise ConfigError("ANTHROPIC_API_KEY is not set: the backfill runs through Claude")

    async def run() -> None:
        pool = await create_pool(settings.database_url or "", min_size=1, max_size=2)
        client = create_client(settings)
        claude = ClaudeQualificationEngine(
            client, ClaudeConfig.from_settings(settings), FeatureFlags.from_settings(settings)
        )
        try:
            batch = batch_id
            if batch is None:
                leads = await work.leads_to_backfill(
                    pool,
                    organization_id=organization,
                    engine=None if engine == "any" else engine,
                    limit=limit,
                )
                if not leads:
                    typer.echo("no leads to backfill")
                    return
                batch = await work.submit(pool, client, claude, leads, organization_id=organization)
                typer.echo(f"submitted batch {batch} with {len(leads)} leads")
            if not wait:
                typer.echo(f"collect it later with: jorge backfill --batch-id {batch}")
                return
            await work.wait_until_ended(client, batch, poll_seconds)
            report = await work.collect(
                pool,
                client,
                batch,
                cache_ttl=settings.claude_prompt_cache_ttl,
                expires_after_days=settings.qualification_expires_after_days,
            )
            typer.echo(
                f"batch {report.batch_id}: stored {report.stored}, invalid answers {report.invalid}, "
                f"errored {report.errored}, estimated cost ${report.cost_usd:.4f}"
            )
        finally:
            await client.close()
            await pool.close()

    asyncio.run(run())
