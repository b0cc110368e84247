"""`jorge up`: start the stack, prepare it, run every service as a child, stop all on Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

from jorge_cli.demo_catalog import load_demo_catalog
from jorge_cli.service_process import GATEWAY_NICENESS, lower_priority, worker_processes
from jorge_cli.stack import EmbeddedStack, free_port
from jorge_cli.state import clear_state, read_running_state, write_state
from jorge_runtime.db import create_pool, migrate
from jorge_runtime.kafka.admin import ensure_topics
from jorge_runtime.kafka.security import kafka_client_options
from jorge_runtime.settings import Settings, load_settings
from schemas.topics import TopicNames
from services.gateway.tenancy import TenancyStore

WORKERS = ("qualifier", "matcher", "seller_analyzer", "crm_sync")
DEMO_ORGANIZATION = "demo"
DEMO_ORGANIZATION_NAME = "Demo Realty (Rancho Cucamonga)"
_RESTART_LIMIT = 5
_STOP_GRACE_SECONDS = 10.0


@dataclass
class Child:
    """One service process the supervisor runs and restarts if it dies."""

    name: str
    argv: list[str]
    env: dict[str, str]
    url: str
    health_url: str
    log_path: Path
    # What "up" waits for: readiness (a worker's consumers hold their partitions), if not health_url.
    ready_url: str | None = None
    admin_url: str | None = None
    niceness: int = 0
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603  argv list of our own commands, no shell
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        lower_priority(self.process.pid, self.niceness)
        self.started_at = time.monotonic()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, deadline: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _say(line: str = "") -> None:
    print(line, flush=True)


async def _prepare(settings: Settings, home: Path) -> str:
    """Migrate, create topics, make sure the demo organisation has a working key; return it."""
    assert settings.database_url and settings.kafka_bootstrap_servers
    applied = await migrate(settings.database_url)
    _say(f"  migrations: {len(applied)} applied" if applied else "  migrations: up to date")
    created = await ensure_topics(
        settings.kafka_bootstrap_servers,
        TopicNames(settings.kafka_topic_prefix).all(),
        replication_factor=settings.kafka_replication_factor,
        connection=kafka_client_options(settings),
    )
    _say(f"  topics: {len(created)} created" if created else "  topics: all present")
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        tenancy = TenancyStore(pool)
        await tenancy.create_organization(DEMO_ORGANIZATION, DEMO_ORGANIZATION_NAME)
        counts = await load_demo_catalog(pool, DEMO_ORGANIZATION)
        _say(f"  demo catalog: {counts.inserted} new, {counts.updated} updated, {counts.unchanged} unchanged")
        key_file = home / "demo_api_key"
        if key_file.exists():
            saved = key_file.read_text().strip()
            if await tenancy.authenticate(saved):
                return saved
        issued = await tenancy.issue_key(DEMO_ORGANIZATION, "demo key created by jorge up")
        key_file.write_text(issued.secret)
        key_file.chmod(0o600)
        return issued.secret
    finally:
        await pool.close()


def _local_secret(path: Path, new: Callable[[], str] = lambda: secrets.token_urlsafe(48)) -> str:
    """A random secret kept in the data directory, so tokens survive a restart of `jorge up`."""
    if not path.exists():
        path.write_text(new())
        path.chmod(0o600)
    return path.read_text().strip()


def _children(settings: Settings, env: dict[str, str], home: Path) -> list[Child]:
    python = sys.executable
    api_port = settings.api_port if _port_is_free(settings.api_port) else free_port()
    admin_port = free_port()
    gateway_url = f"http://127.0.0.1:{api_port}"
    admin_url = f"http://127.0.0.1:{admin_port}"
    children = [
        Child(
            name="gateway",
            argv=[python, "-m", "jorge_cli", "gateway"],
            # /metrics and /health/detailed on their own port, as in production.
            env={**env, "API_HOST": "127.0.0.1", "API_PORT": str(api_port), "ADMIN_PORT": str(admin_port)},
            url=gateway_url,
            health_url=f"{admin_url}/health/detailed",
            ready_url=f"{gateway_url}/health/ready",
            admin_url=admin_url,
            log_path=home / "logs" / "gateway.log",
            # The workers first when the cores are short: leads are accepted as fast as they finish.
            niceness=GATEWAY_NICENESS,
        )
    ]
    for worker in WORKERS:
        # crm_sync is two processes, its GHL sync and its webhook engine (CRM_SYNC_ROLE).
        for name, extra in worker_processes(worker):
            port = free_port()
            children.append(
                Child(
                    name=name,
                    argv=[python, "-m", "jorge_cli", "worker", worker],
                    env={**env, **extra, "HEALTH_HOST": "127.0.0.1", "HEALTH_PORT": str(port)},
                    url=f"http://127.0.0.1:{port}",
                    health_url=f"http://127.0.0.1:{port}/health/detailed",
                    ready_url=f"http://127.0.0.1:{port}/health/ready",
                    log_path=home / "logs" / f"{name}.log",
                )
            )
    return children


def _ghl_sandbox(environment: dict[str, Any], settings: Settings) -> int | None:
    """Without a GHL token, point crm_sync at a local GHL sandbox; return its port (else None)."""
    if settings.ghl_token is not None:
        return None
    port = free_port()
    environment.update(
        {
            "GHL_BASE_URL": f"http://127.0.0.1:{port}",
            "GHL_TOKEN": "sandbox-token",
            # The sandbox keeps its CRM in memory: a new location per run, so contact mappings
            # stored by an earlier run never point into an empty sandbox.
            "GHL_LOCATION_ID": f"sandbox-{secrets.token_hex(4)}",
            "GHL_PIPELINE_ID": settings.ghl_pipeline_id or "sandbox-pipeline",
            "GHL_PIPELINE_STAGE_ID": settings.ghl_pipeline_stage_id or "new-lead",
            "GHL_ORGANIZATION": DEMO_ORGANIZATION,
        }
    )
    return port


def _ghl_sandbox_child(port: int, env: dict[str, str], home: Path) -> Child:
    url = f"http://127.0.0.1:{port}"
    return Child(
        name="ghl_sandbox",
        argv=[sys.executable, "-m", "sandboxes.ghl", "--port", str(port)],
        env=env,
        url=url,
        health_url=f"{url}/health",
        log_path=home / "logs" / "ghl_sandbox.log",
    )


def _port_is_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _wait_healthy(children: list[Child], should_stop: Callable[[], bool], timeout: float = 90.0) -> list[str]:
    """Wait until every child is ready (every worker's consumers hold their partitions, so the
    first lead after "up" is consumed at once); return the names that never were."""
    pending = {c.name: c for c in children}
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while pending and time.monotonic() < deadline and not should_stop():
            for name, child in list(pending.items()):
                if child.process is not None and child.process.poll() is not None:
                    return sorted(pending)  # one died: say so now rather than after the timeout
                try:
                    if client.get(child.ready_url or child.health_url).status_code == 200:
                        del pending[name]
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
    return sorted(pending)


def _banner(gateway_url: str, api_key: str, home: Path, stack: str) -> None:
    body = (
        '{"lead_id": "lead-001", "name": "Maria Lopez", "phone": "+1 909 555 0143", '
        '"message": "Pre-approved for $750k, looking for a 3 bed in Victoria, moving in 2 months"}'
    )
    _say()
    _say(f"Jorge Platform is up ({stack}).")
    _say(f"  API:        {gateway_url}   (docs: {gateway_url}/docs)")
    _say(f"  API key:    {api_key}   (organisation '{DEMO_ORGANIZATION}')")
    _say(f"  Logs:       {home / 'logs'}")
    _say("  Status:     ./jorge status   (from any terminal)")
    _say()
    _say("Qualify a lead:")
    _say(f"  curl -s -X POST {gateway_url}/v1/leads/qualify \\")
    _say(f"    -H 'Authorization: Bearer {api_key}' -H 'Content-Type: application/json' \\")
    _say(f"    -d '{body}'")
    _say("Then read the result:")
    _say(f"  curl -s {gateway_url}/v1/leads/lead-001/qualification -H 'Authorization: Bearer {api_key}'")
    _say()
    _say("Press Ctrl-C to stop everything.")


def run_up(home: Path) -> int:
    """Run the whole platform until Ctrl-C or SIGTERM; return the exit code."""
    if (running := read_running_state(home)) is not None:
        _say(f"A Jorge stack is already running (pid {running['pid']}); see `./jorge status`.")
        return 1
    settings = load_settings()
    home.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    stack = EmbeddedStack(home)
    want = {
        "kafka": settings.kafka_bootstrap_servers is None,
        "postgres": settings.database_url is None,
        "redis": settings.redis_url is None,
    }
    embedded = [name for name, needed in want.items() if needed]
    _say(
        "Starting "
        + (f"the embedded {', '.join(embedded)}" if embedded else "with external services")
        + "..."
    )
    urls = stack.start(**want)
    children: list[Child] = []
    stopping = False

    def request_stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        environment = {
            "KAFKA_BOOTSTRAP_SERVERS": urls.kafka_bootstrap_servers or settings.kafka_bootstrap_servers,
            "DATABASE_URL": urls.database_url or settings.database_url,
            "REDIS_URL": urls.redis_url or settings.redis_url,
        }
        if want["kafka"]:
            environment["KAFKA_ENABLE_IDEMPOTENCE"] = "false"  # Tansu does not support it
        if "webhook_allowed_subnets" not in settings.model_fields_set:
            # The demo lets a new user point webhooks at a receiver on their own machine.
            environment["WEBHOOK_ALLOWED_SUBNETS"] = "127.0.0.0/8,::1/128"
        if settings.jwt_secret is None:
            environment["JWT_SECRET"] = _local_secret(home / "jwt_secret")
        if settings.crm_credentials_key is None:
            # Kept, like the JWT secret: a new key would make the stored GHL tokens unreadable.
            environment["CRM_CREDENTIALS_KEY"] = _local_secret(
                home / "crm_credentials_key", lambda: Fernet.generate_key().decode()
            )
        sandbox_port = _ghl_sandbox(environment, settings)
        settings = load_settings(**{k.lower(): v for k, v in environment.items()})
        api_key = asyncio.run(_prepare(settings, home))
        env = {**os.environ, **{k: str(v) for k, v in environment.items()}}
        children = _children(settings, env, home)
        if sandbox_port is not None:
            children.insert(1, _ghl_sandbox_child(sandbox_port, env, home))
        for child in children:
            child.start()
        _save_state(home, environment, children, api_key)
        if (failed := _wait_healthy(children, lambda: stopping)) and not stopping:
            _say(f"Not healthy: {', '.join(failed)}; see their logs in {home / 'logs'}.")
        _banner(children[0].url, api_key, home, "embedded stack" if embedded else "external services")
        if sandbox_port is not None:
            _say(f"CRM (GHL sandbox, no GHL_TOKEN set): curl -s http://127.0.0.1:{sandbox_port}/")
        while not stopping:
            _restart_dead(children, home, environment, api_key)
            time.sleep(0.5)
        _say("\nStopping...")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for child in children:
            child.stop()
        deadline = time.monotonic() + _STOP_GRACE_SECONDS
        for child in children:
            child.wait_stopped(deadline)
        stack.stop()
        clear_state(home)
        _say("Stopped.")


def _restart_dead(children: list[Child], home: Path, environment: dict[str, Any], api_key: str) -> None:
    for child in children:
        if child.process is None or child.process.poll() is None:
            continue
        code = child.process.returncode
        if child.restarts >= _RESTART_LIMIT:
            continue
        if time.monotonic() - child.started_at < 2**child.restarts:
            continue  # back off before restarting a crashing service
        child.restarts += 1
        _say(
            f"{child.name} exited with code {code}; restarting ({child.restarts}/{_RESTART_LIMIT}); "
            f"see {child.log_path}"
        )
        child.start()
        _save_state(home, environment, children, api_key)


def _save_state(home: Path, environment: dict[str, Any], children: list[Child], api_key: str) -> None:
    write_state(
        home,
        {
            "pid": os.getpid(),
            "started_at": datetime.now(UTC).isoformat(),
            "environment": environment,
            "demo": {"organization_id": DEMO_ORGANIZATION, "api_key": api_key},
            "components": {
                c.name: {
                    "url": c.url,
                    "health_url": c.health_url,
                    **({"admin_url": c.admin_url} if c.admin_url else {}),
                    "pid": c.process.pid if c.process else None,
                    "log": str(c.log_path),
                }
                for c in children
            },
        },
    )
