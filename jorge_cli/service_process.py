"""Jorge services as child processes (`jorge gateway`, `jorge worker NAME`), for tests and benchmarks."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr

from jorge_cli.stack import free_port
from jorge_runtime.settings import Settings

#: The repository root: children run from here, as `python -m jorge_cli` does in development.
REPO = Path(__file__).resolve().parents[1]


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


@dataclass
class ServiceProcess:
    """A `jorge gateway` or `jorge worker NAME` child, killable like a crashed container."""

    argv: list[str]
    env: dict[str, str]
    health_url: str
    base_url: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def gateway(cls, settings: Settings, log_dir: Path) -> ServiceProcess:
        port = free_port()
        env = settings_env(settings) | {"API_PORT": str(port), "API_HOST": "127.0.0.1"}
        return cls(
            [sys.executable, "-m", "jorge_cli", "gateway"],
            env,
            f"http://127.0.0.1:{port}/health",
            f"http://127.0.0.1:{port}",
            log_dir / "gateway.log",
        )

    @classmethod
    def worker(cls, name: str, settings: Settings, log_dir: Path) -> ServiceProcess:
        port = free_port()
        env = settings_env(settings) | {"HEALTH_PORT": str(port), "HEALTH_HOST": "127.0.0.1"}
        return cls(
            [sys.executable, "-m", "jorge_cli", "worker", name],
            env,
            f"http://127.0.0.1:{port}/health/detailed",
            f"http://127.0.0.1:{port}",
            log_dir / f"{name}.log",
        )

    async def start(self, timeout: float = 90.0) -> ServiceProcess:
        # Generous: a two-worker gateway has taken over 20 s to import on a loaded two-core CI box.
        # A healthy start returns as soon as it answers, so the bound costs nothing.
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: ASYNC220, S603  Popen returns at once; argv list of our own commands, no shell
                self.argv, env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.argv[3:]} exited: {self.log_path.read_text()[-3000:]}")
                try:
                    if (await client.get(self.health_url)).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.argv[3:]} not healthy in {timeout}s: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, like a crash."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
