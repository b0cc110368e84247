"""`jorge crm`: crm_sync's per-organisation GoHighLevel credentials (tokens encrypted at rest)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from pydantic import SecretStr

from jorge_cli.state import settings_for_command
from jorge_runtime.credential_cipher import CredentialCipher, generate_key
from jorge_runtime.db import create_pool
from jorge_runtime.settings import ConfigError, Settings
from jorge_runtime.webhook_secrets import SecretsReport, encrypt_stored_secrets, webhook_secret_cipher
from services.crm_sync.ghl.credential_store import CredentialStore, UnknownOrganization

T = TypeVar("T")

crm = typer.Typer(
    help="crm_sync: GHL credentials per organisation; the key encrypting them and webhook secrets.",
    no_args_is_help=True,
)
credentials = typer.Typer(
    help="Each organisation's GHL location and token (encrypted with CRM_CREDENTIALS_KEY; never shown).",
    no_args_is_help=True,
)
crm.add_typer(credentials, name="credentials")


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"jorge: {message}", err=True)
    return typer.Exit(code)


def _settings(*, key: bool) -> tuple[Settings, CredentialCipher | None]:
    try:
        settings = settings_for_command()
        settings.require("database_url")
        if key:
            settings.require("crm_credentials_key")
        return settings, CredentialCipher.from_setting(settings.crm_credentials_key)
    except ConfigError as exc:
        missing_key = str(exc).startswith("CRM_CREDENTIALS_KEY is not set")
        hint = " (`jorge crm generate-key` makes one)" if missing_key else ""
        raise _fail(f"configuration error: {exc}{hint}") from None


def _with_store(
    cipher: CredentialCipher | None, settings: Settings, work: Callable[[CredentialStore], Awaitable[T]]
) -> T:
    async def run() -> T:
        assert settings.database_url
        pool = await create_pool(settings.database_url, min_size=1, max_size=2)
        try:
            return await work(CredentialStore(pool, cipher))
        finally:
            await pool.close()

    return asyncio.run(run())


def _read_token(from_stdin: bool) -> SecretStr:
    """The token from stdin or a hidden prompt: never from argv (shell history, `ps`)."""
    if from_stdin:
        token = sys.stdin.read().strip()
    else:
        token = typer.prompt("GHL token (input hidden)", hide_input=True).strip()
    if not token:
        raise _fail("the token is empty")
    return SecretStr(token)


@crm.command("generate-key")
def generate() -> None:
    """Print a new random key for CRM_CREDENTIALS_KEY (to rotate: put it first, keep the old after)."""
    typer.echo(generate_key())


@credentials.command("set")
def set_credentials(
    organization: Annotated[str, typer.Argument(help="The organisation id.")],
    location_id: Annotated[str, typer.Option("--location-id", help="Its GHL location (sub-account) id.")],
    token_stdin: Annotated[
        bool, typer.Option("--token-stdin", help="Read the token from stdin instead of a hidden prompt.")
    ] = False,
    pipeline_id: Annotated[
        str | None, typer.Option("--pipeline-id", help="Its own pipeline (default GHL_PIPELINE_ID).")
    ] = None,
    stage_id: Annotated[
        str | None, typer.Option("--stage-id", help="Its own stage (default GHL_PIPELINE_STAGE_ID).")
    ] = None,
    oauth: Annotated[
        bool,
        typer.Option(
            "--oauth",
            help="The token is the refresh token of a Marketplace app's installation (OAuth); crm_sync "
            "gets access tokens with it (GHL_CLIENT_ID/GHL_CLIENT_SECRET) and stores the rotated ones.",
        ),
    ] = False,
) -> None:
    """Create or replace an organisation's GHL location and token (a Private Integration Token, or
    with --oauth a refresh token). crm_sync uses them on its next event (no restart)."""
    settings, cipher = _settings(key=True)
    token = _read_token(token_stdin)

    async def work(store: CredentialStore) -> None:
        if oauth:
            await store.save_oauth(organization, location_id, token, pipeline_id, stage_id)
        else:
            await store.save(organization, location_id, token, pipeline_id, stage_id)

    try:
        _with_store(cipher, settings, work)
    except UnknownOrganization:
        raise _fail(f"no organisation {organization!r} (create it with `jorge orgs create`)", 1) from None
    typer.echo(f"credentials of {organization} set (location {location_id}, token encrypted)")


@credentials.command("list")
def list_credentials(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every organisation with credentials of its own: location, pipeline, stage, whether the
    token is encrypted, when last set. Never the token."""
    settings, cipher = _settings(key=False)
    rows = _with_store(cipher, settings, lambda store: store.summaries())
    if as_json:
        listed = [
            {
                "organization_id": r.organization_id,
                "location_id": r.location_id,
                "pipeline_id": r.pipeline_id,
                "stage_id": r.stage_id,
                "token": "encrypted" if r.encrypted else "plaintext",
                "updated_at": r.updated_at.isoformat(),
            }
            for r in rows
        ]
        typer.echo(json.dumps(listed, indent=2))
        return
    if not rows:
        typer.echo("no organisation has credentials of its own (GHL_TOKEN/GHL_LOCATION_ID apply)")
        return
    for r in rows:
        token = "encrypted" if r.encrypted else "PLAINTEXT (run `jorge crm credentials rotate`)"
        typer.echo(
            f"{r.organization_id:<24} location={r.location_id:<24} pipeline={r.pipeline_id or '-'} "
            f"stage={r.stage_id or '-'} token={token} updated={r.updated_at.isoformat(timespec='seconds')}"
        )


@credentials.command("remove")
def remove_credentials(organization: Annotated[str, typer.Argument(help="The organisation id.")]) -> None:
    """Delete an organisation's own credentials (GHL_TOKEN/GHL_LOCATION_ID then apply to it)."""
    settings, cipher = _settings(key=False)
    if not _with_store(cipher, settings, lambda store: store.remove(organization)):
        raise _fail(f"{organization} has no credentials of its own", 1)
    typer.echo(f"credentials of {organization} removed")


@credentials.command("rotate")
def rotate_credentials(
    organizations: Annotated[
        list[str] | None, typer.Option("--organization", help="Only this organisation (repeatable).")
    ] = None,
) -> None:
    """Re-encrypt every token with the first key of CRM_CREDENTIALS_KEY, and encrypt tokens still
    in plain text. Exit code 1 if some token no configured key opens (they are left as they are)."""
    settings, cipher = _settings(key=True)
    report = _with_store(cipher, settings, lambda store: store.rotate(organizations or None))
    typer.echo(
        f"re-encrypted {report.reencrypted}, encrypted {report.encrypted_plaintext} stored in plain text"
    )
    if report.unreadable:
        raise _fail(
            f"no configured key opens the token of: {', '.join(report.unreadable)} "
            "(add the old key after the new one, or `set` them again)",
            1,
        )


@crm.command("rotate-webhook-secrets")
def rotate_webhook_secrets() -> None:
    """Re-encrypt every webhook signing secret with the first key of CRM_CREDENTIALS_KEY, and
    encrypt those still in plain text (the gateway and crm_sync also do that when they start).
    Exit code 1 if some secret no configured key opens (they are left as they are)."""
    settings, _ = _settings(key=True)
    cipher = webhook_secret_cipher(settings.crm_credentials_key)
    assert cipher is not None and settings.database_url

    async def run() -> SecretsReport:
        pool = await create_pool(settings.database_url or "", min_size=1, max_size=2)
        try:
            return await encrypt_stored_secrets(pool, cipher, rotate=True)
        finally:
            await pool.close()

    report = asyncio.run(run())
    typer.echo(
        f"webhook secrets: re-encrypted {report.reencrypted}, encrypted {report.encrypted_plaintext} "
        "stored in plain text"
    )
    if report.unreadable:
        raise _fail(
            f"no configured key opens the secret of endpoint(s): {', '.join(report.unreadable)} "
            "(add the old key after the new one, or rotate those endpoints' secrets through the API)",
            1,
        )
