"""Jorge services as child processes (`jorge gateway`, `jorge worker NAME`), for tests and benchmarks."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import SecretStr

from jorge_cli.stack import free_port
from jorge_runtime.settings import Settings

#: The repository root: children run from here, as `python -m jorge_cli` does in development.
REPO = Path(__file__).resolve().parents[1]


#: The gateway's CPU niceness when every service shares one machine (`jorge up`; docker compose
#: gives it a smaller cpu_shares). A flood of leads saturates the cores; at equal priority the
#: gateway accepted about 1.2 leads for each one the workers finished, so a backlog grew and
#: leads waited seconds for their webhook. Niced, the gateway takes the CPU the workers leave
#: and accepts at the pace they finish (bench/README.md: pipeline_throughput). Alone on a
#: machine, or idle cores anywhere, it changes nothing.
GATEWAY_NICENESS = 10

#: crm_sync runs as one process per half (CRM_SYNC_ROLE): the GHL sync and the webhook engine,
#: so a GHL backlog never holds webhooks up and each half scales on its own.
CRM_SYNC_ROLES = ("ghl", "webhooks")


def worker_processes(worker: str) -> list[tuple[str, dict[str, str]]]:
    """The processes a worker runs as: (process name, environment on top of the settings')."""
    if worker == "crm_sync":
        return [(f"crm_sync.{role}", {"CRM_SYNC_ROLE": role}) for role in CRM_SYNC_ROLES]
    return [(worker, {})]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process see exactly these settings."""
    # A developer's own ANTHROPIC_API_KEY or GHL_TOKEN must never reach a test's children.
    own = ("KAFKA_", "DATABASE_", "REDIS_", "ANTHROPIC_", "CLAUDE_", "GHL_", "CRM_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is not None:
            env[name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def lower_priority(pid: int, niceness: int) -> None:
    """Add ``niceness`` to a child's CPU niceness (0: leave it as it is)."""
    if niceness:
        os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, pid) + niceness)


@dataclass
class ServiceProcess:
    """A `jorge gateway` or `jorge worker NAME` child, killable like a crashed container."""

    argv: list[str]
    env: dict[str, str]
    health_url: str
    base_url: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    #: Started, stopped and killed with this one: crm_sync's webhook engine beside its GHL sync.
    companions: list[ServiceProcess] = field(default_factory=list)
    #: Added to the child's CPU niceness once started (GATEWAY_NICENESS: the gateway as `jorge up` runs it).
    niceness: int = 0

    @classmethod
    def gateway(cls, settings: Settings, log_dir: Path, niceness: int = 0) -> ServiceProcess:
        port = free_port()
        env = settings_env(settings) | {"API_PORT": str(port), "API_HOST": "127.0.0.1"}
        return cls(
            [sys.executable, "-m", "jorge_cli", "gateway"],
            env,
            f"http://127.0.0.1:{port}/health",
            f"http://127.0.0.1:{port}",
            log_dir / "gateway.log",
            niceness=niceness,
        )

    @classmethod
    def worker(cls, name: str, settings: Settings, log_dir: Path) -> ServiceProcess:
        """The worker as `jorge up` runs it. crm_sync is two processes (``worker_processes``):
        this one, the GHL sync (log ``crm_sync.log``, its health and metrics on ``base_url``),
        and the webhook engine as its companion (``crm_sync.webhooks.log``)."""
        processes: list[ServiceProcess] = []
        for process_name, extra in worker_processes(name):
            port = free_port()
            env = settings_env(settings) | extra | {"HEALTH_PORT": str(port), "HEALTH_HOST": "127.0.0.1"}
            log_name = name if not processes else process_name
            processes.append(
                cls(
                    [sys.executable, "-m", "jorge_cli", "worker", name],
                    env,
                    f"http://127.0.0.1:{port}/health/detailed",
                    f"http://127.0.0.1:{port}",
                    log_dir / f"{log_name}.log",
                )
            )
        main, *companions = processes
        main.companions = companions
        return main

    @classmethod
    def worker_role(cls, role: str, settings: Settings, log_dir: Path) -> ServiceProcess:
        """One half of crm_sync alone (``role``: one of CRM_SYNC_ROLES), as its Deployment runs it."""
        process = cls.worker("crm_sync", settings, log_dir)
        chosen = next(p for p in (process, *process.companions) if p.env["CRM_SYNC_ROLE"] == role)
        chosen.companions = []
        return chosen

    async def start(self, timeout: float = 90.0) -> ServiceProcess:
        """Start this process and its companions; return once every one answers its health URL."""
        await asyncio.gather(self._start_one(timeout), *(c._start_one(timeout) for c in self.companions))
        return self

    async def _start_one(self, timeout: float) -> None:
        # Generous: a two-worker gateway has taken over 20 s to import on a loaded two-core CI box.
        # A healthy start returns as soon as it answers, so the bound costs nothing.
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: ASYNC220, S603  Popen returns at once; argv list of our own commands, no shell
                self.argv, env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )
        lower_priority(self.process.pid, self.niceness)
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.argv[3:]} exited: {self.log_path.read_text()[-3000:]}")
                try:
                    if (await client.get(self.health_url)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.argv[3:]} not healthy in {timeout}s: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, like a crash (companions too)."""
        for companion in self.companions:
            companion.kill()
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s (companions too)."""
        for companion in self.companions:
            companion.stop()
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
