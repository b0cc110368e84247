"""`jorge orgs` and `jorge keys`: manage organisations and their API keys in the database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from jorge_runtime.db import create_pool
from jorge_runtime.settings import ConfigError
from schemas.leads import InvalidBookingUrl, check_booking_url, schedule_showing_url
from schemas.limits import LIMITS
from services.gateway.tenancy import TenancyStore

T = TypeVar("T")

orgs = typer.Typer(
    help="Create and list organisations (tenants); set their limits and booking link.", no_args_is_help=True
)
keys = typer.Typer(
    help="Create, list and revoke API keys; a key is shown only when created.", no_args_is_help=True
)


def _with_store(work: Callable[[TenancyStore], Awaitable[T]]) -> T:
    from jorge_cli.state import settings_for_command

    settings = settings_for_command()
    settings.require("database_url")
    assert settings.database_url

    async def run() -> T:
        pool = await create_pool(settings.database_url or "", min_size=1, max_size=2)
        try:
            return await work(TenancyStore(pool))
        finally:
            await pool.close()

    return asyncio.run(run())


@orgs.command("create")
def create_organization(
    organization_id: Annotated[str, typer.Argument(help="2-63 lower-case letters, digits or dashes.")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
) -> None:
    """Create an organisation (does nothing if it exists)."""
    try:
        created = _with_store(
            lambda store: store.create_organization(organization_id, name or organization_id)
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    typer.echo(
        f"created organisation {organization_id}" if created else f"organisation {organization_id} exists"
    )


@orgs.command("list")
def list_organizations() -> None:
    """List organisations with their number of live keys."""
    for organization_id, name, live_keys in _with_store(lambda store: store.list_organizations()):
        typer.echo(f"{organization_id:<24} {live_keys:>3} live keys  {name}")


@keys.command("create")
def create_key(
    organization_id: str,
    name: Annotated[str, typer.Option(help="What the key is for, e.g. 'website form'.")] = "api key",
) -> None:
    """Issue an API key for the organisation and print it once; only its hash is stored."""
    issued = _with_store(lambda store: store.issue_key(organization_id, name))
    typer.echo(f"key id: {issued.key_id}")
    typer.echo(f"API key (shown once, store it now): {issued.secret}")


@keys.command("list")
def list_keys(organization_id: str) -> None:
    """List the organisation's keys (prefix only, never the key)."""
    for info in _with_store(lambda store: store.list_keys(organization_id)):
        state = f"revoked {info.revoked_at:%Y-%m-%d}" if info.revoked_at else "active"
        typer.echo(f"{info.key_id}  {info.key_prefix}…  {state:<18} {info.created_at:%Y-%m-%d}  {info.name}")


@keys.command("revoke")
def revoke_key(key_id: str) -> None:
    """Revoke a key at once: requests with it get 401 from then on."""
    if not _with_store(lambda store: store.revoke_key(key_id)):
        typer.echo(f"no active key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


@orgs.command("set-limit")
def set_limit(
    organization_id: str,
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(LIMITS)}.")],
    value: Annotated[int | None, typer.Argument(help="The new maximum; omit to restore the default.")] = None,
) -> None:
    """Override one rate limit or quota for an organisation (gateways see it within AUTH_CACHE_SECONDS)."""
    if name not in LIMITS:
        raise ConfigError(f"unknown limit {name!r}; choose one of: {', '.join(LIMITS)}")
    if value is not None and value < 0:
        raise ConfigError("a limit cannot be negative")
    if not _with_store(lambda store: store.set_rate_limit(organization_id, name, value)):
        typer.echo(f"no organisation {organization_id}", err=True)
        raise typer.Exit(1)
    shown = value if value is not None else f"default ({LIMITS[name].default})"
    typer.echo(f"{organization_id}: {name} = {shown}")


@orgs.command("set-booking-url")
def set_booking_url(
    organization_id: str,
    url: Annotated[
        str,
        typer.Argument(
            help="An https:// booking page, e.g. a GHL calendar's; {lead_id} is replaced by the lead's "
            "id (without it, lead_id=… is added to the query). An empty string clears it."
        ),
    ],
) -> None:
    """Set the booking link the qualify answer shows as `schedule_showing_url`, with the lead's id."""
    template: str | None = None
    if url:
        try:
            template = check_booking_url(url)
        except InvalidBookingUrl as exc:
            raise ConfigError(str(exc)) from None
    if not _with_store(lambda store: store.set_booking_url(organization_id, template)):
        typer.echo(f"no organisation {organization_id}", err=True)
        raise typer.Exit(1)
    if template is None:
        typer.echo(f"{organization_id}: booking link cleared (schedule_showing_url is null)")
    else:
        typer.echo(f"{organization_id}: booking link set, e.g. {schedule_showing_url(template, 'lead-001')}")


@orgs.command("show-booking-url")
def show_booking_url(organization_id: str) -> None:
    """Print the organisation's booking link template (nothing is printed when none is set)."""
    template = _with_store(lambda store: store.booking_url(organization_id))
    if template:
        typer.echo(template)
