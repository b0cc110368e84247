"""Entry point of the `jorge` command."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from typing import Annotated, Any, NoReturn

import asyncpg
import httpx
import typer

from jorge_cli.admin import keys, orgs
from jorge_cli.catalog import catalog
from jorge_cli.crm import crm
from jorge_cli.dlq import dlq
from jorge_cli.events import events
from jorge_cli.mcp_server import mcp_tools
from jorge_cli.purge import purge_tools
from jorge_cli.qualifier_tools import qualifier_tools
from jorge_cli.state import project_home, read_running_state, settings_for_command
from jorge_runtime.observability.logs import configure_logging, redact
from jorge_runtime.settings import ConfigError, Settings
from schemas.topics import ALL_TOPICS, TopicNames

WORKER_NAMES = ("qualifier", "matcher", "seller_analyzer", "crm_sync")

app = typer.Typer(
    help="Jorge Platform: run the whole platform, one service, migrations, topics, status.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(orgs, name="orgs")
app.add_typer(keys, name="keys")
app.add_typer(qualifier_tools)  # jorge eval, jorge backfill
app.add_typer(qualifier_tools, name="qualifier")  # the same as jorge qualifier eval|backfill
app.add_typer(mcp_tools)  # jorge mcp
app.add_typer(catalog, name="catalog")
app.add_typer(dlq, name="dlq")  # crm_sync dead letters
app.add_typer(events, name="events")  # the event contract, jorge events tail
app.add_typer(crm, name="crm")  # crm_sync credentials per organisation
app.add_typer(purge_tools)  # jorge purge: retention


@app.command()
def up() -> None:
    """Run everything: the embedded stack for any of KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL,
    REDIS_URL not set, migrations, topics, a demo organisation and key, the gateway and every
    worker. Ctrl-C stops it all."""
    from jorge_cli.supervisor import run_up

    raise typer.Exit(run_up(project_home()))


@app.command()
def smoke(
    url: Annotated[str, typer.Argument(help="The gateway's base URL, e.g. https://api.example.com.")],
    key: Annotated[str, typer.Argument(help="An API key of the organisation to test with.")],
    webhook_url: Annotated[
        str | None,
        typer.Option(help="Receiver the deployment can reach (any 2xx); default: one on this machine."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the lead and the webhook.")] = 60.0,
) -> None:
    """Post-deploy smoke test: health, auth, a lead qualified end to end, a test webhook delivered."""
    from jorge_cli.smoke import run_smoke

    checks = asyncio.run(run_smoke(url, key, webhook_url=webhook_url, timeout=timeout))
    for check in checks:
        typer.echo(f"{'PASS' if check.ok else 'FAIL'}  {check.name}: {redact(check.detail)}")
    if len(checks) < 4 or not all(check.ok for check in checks):
        typer.echo("Smoke test FAILED", err=True)
        raise typer.Exit(1)
    typer.echo("Smoke test passed")


@app.command()
def gateway(
    host: Annotated[str | None, typer.Option(help="Bind address (default API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default API_PORT).")] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.")] = 1,
) -> None:
    """Run the HTTP gateway alone, as its container would."""
    import uvicorn
    import uvicorn.supervisors

    from jorge_cli.sockets import bind_socket

    settings = _settings()
    settings.require("kafka_bootstrap_servers", "database_url", "redis_url", "jwt_secret")
    configure_logging("gateway", settings.log_level)
    if workers > 1 or settings.prometheus_multiproc_dir:
        from jorge_runtime.observability.multiproc import prepare_multiprocess_dir

        # Before any prometheus_client import: /metrics then adds up every worker's values.
        prepare_multiprocess_dir(settings.prometheus_multiproc_dir)
    config = uvicorn.Config(
        "services.gateway.app:create_app_from_environment",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )
    # One app on the API port and, with ADMIN_PORT, the admin port (metrics, detailed health):
    # services/gateway/admin_port.py tells them apart by the port a request arrived on.
    sockets = [config.bind_socket()]
    if settings.admin_port is not None:
        sockets.append(bind_socket(config.host, settings.admin_port))
    if workers > 1:
        uvicorn.supervisors.Multiprocess(config, sockets=sockets).run()
    else:
        uvicorn.Server(config).run(sockets=sockets)


@app.command()
def worker(name: Annotated[str, typer.Argument(help=f"One of: {', '.join(WORKER_NAMES)}.")]) -> None:
    """Run one worker alone, as its container would; it serves /health and /metrics on HEALTH_PORT."""
    import uvicorn

    if name not in WORKER_NAMES:
        _fail(f"unknown worker {name!r}; choose one of: {', '.join(WORKER_NAMES)}")
    settings = _settings()
    configure_logging(name, settings.log_level)
    module = importlib.import_module(f"services.{name}.app")
    try:
        asgi = module.create_app(settings)
    except ConfigError as exc:
        _fail(str(exc))
    uvicorn.run(asgi, host=settings.health_host, port=settings.health_port, log_config=None, access_log=False)


@app.command()
def migrate() -> None:
    """Apply pending PostgreSQL migrations (safe to run from several places at once)."""
    from jorge_runtime.db import migrate as apply

    settings = _settings()
    _require(settings, "database_url")
    assert settings.database_url
    applied = asyncio.run(apply(settings.database_url))
    typer.echo("\n".join(f"applied {name}" for name in applied) or "database is up to date")


@app.command()
def topics() -> None:
    """Create every topic with its partition count (existing topics are left as they are)."""
    from jorge_runtime.kafka.admin import ensure_topics
    from jorge_runtime.kafka.security import kafka_client_options

    settings = _settings()
    _require(settings, "kafka_bootstrap_servers")
    assert settings.kafka_bootstrap_servers
    names = TopicNames(settings.kafka_topic_prefix)
    created = asyncio.run(
        ensure_topics(
            settings.kafka_bootstrap_servers,
            names.all(),
            replication_factor=settings.kafka_replication_factor,
            connection=kafka_client_options(settings),
        )
    )
    for spec in ALL_TOPICS:
        mark = "created" if names(spec) in created else "exists "
        typer.echo(f"{mark}  {names(spec):<40} partitions={spec.partitions}  {spec.description}")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Show every component of the running `jorge up` stack, its URL and health, and the demo key."""
    state = read_running_state()
    if state is None:
        if as_json:
            typer.echo(json.dumps({"running": False}))
        else:
            typer.echo("No Jorge stack is running here; start one with ./jorge up")
        raise typer.Exit(1)
    report = _status_report(state)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"Jorge stack running (pid {report['pid']}, since {report['started_at']})")
    for name, component in report["components"].items():
        admin = f"   (metrics: {component['admin_url']}/metrics)" if "admin_url" in component else ""
        typer.echo(f"  {name:<16} {component['health']:<9} {component['url']}{admin}")
    typer.echo(
        f"  demo API key     {report['demo']['api_key']}  (organisation {report['demo']['organization_id']})"
    )
    if sandbox := report["components"].get("ghl_sandbox"):
        typer.echo(f"  CRM (GHL sandbox) contacts, tags, notes: curl -s {sandbox['url']}/")
    for problem in report.get("crm_problems", []):
        typer.echo(
            f"  CRM problem      {problem['problem']} for {problem['organization_id']} ({problem['count']}): "
            f"{problem['do']}"
        )


def _status_report(state: dict[str, Any]) -> dict[str, Any]:
    components: dict[str, Any] = {}
    with httpx.Client(timeout=2.0) as client:
        gateway_detail: dict[str, Any] = {}
        for name, info in state["components"].items():
            try:
                response = client.get(info["health_url"])
                health = "ok" if response.status_code == 200 else "degraded"
                if name == "gateway":
                    gateway_detail = response.json().get("components", {})
            except httpx.HTTPError:
                health = "down"
            components[name] = {"url": info["url"], "health": health, "pid": info["pid"], "log": info["log"]}
            if admin_url := info.get("admin_url"):
                components[name]["admin_url"] = admin_url  # /metrics, /health/detailed
    env = state["environment"]
    for name, url_key, check in (
        ("kafka", "KAFKA_BOOTSTRAP_SERVERS", "kafka"),
        ("postgresql", "DATABASE_URL", "postgresql"),
        ("redis", "REDIS_URL", "redis"),
    ):
        detail = gateway_detail.get(check, {})
        components[name] = {
            "url": redact(str(env[url_key])),
            "health": detail.get("status", "unknown"),
            "latency_ms": detail.get("latency_ms"),
        }
    return {
        "running": True,
        "pid": state["pid"],
        "started_at": state["started_at"],
        "components": components,
        "demo": state["demo"],
        "crm_problems": _crm_problems(str(env["DATABASE_URL"])),
    }


def _crm_problems(database_url: str) -> list[dict[str, Any]]:
    """GHL credential problems to act on (empty when PostgreSQL cannot be asked)."""
    from jorge_cli.crm_status import crm_problems

    try:
        return asyncio.run(crm_problems(database_url))
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return []


def _settings() -> Settings:
    try:
        return settings_for_command()
    except ConfigError as exc:
        return _fail(str(exc))


def _require(settings: Settings, *names: str) -> None:
    try:
        settings.require(*names)
    except ConfigError as exc:
        _fail(str(exc))


def _fail(message: str) -> NoReturn:
    typer.echo(f"jorge: configuration error: {message}", err=True)
    raise typer.Exit(2)


def main() -> None:
    """Console entry point."""
    try:
        app()
    except ConfigError as exc:
        typer.echo(f"jorge: configuration error: {exc}", err=True)
        sys.exit(2)
