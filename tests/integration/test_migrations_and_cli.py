"""Migrations against the real PostgreSQL, and the CLI's one-line configuration errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import asyncpg

from jorge_cli.stack import StackUrls
from jorge_runtime.db import migrate, migration_files
from tests.support.services import REPO


async def test_migrations_are_recorded_and_idempotent(stack: StackUrls, pool: asyncpg.Pool) -> None:
    assert stack.database_url
    assert await migrate(stack.database_url) == []  # the session already applied them
    versions = [r["version"] for r in await pool.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [version for version, _, _ in migration_files()]
    tables = {
        r["tablename"] for r in await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
    }
    assert {"organizations", "api_keys", "leads", "qualifications", "processed_events", "outbox"} <= tables


def run_jorge(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jorge_cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_malformed_setting_stops_with_one_line_naming_it(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "JORGE_HOME": str(tmp_path),
        "DATABASE_URL": "mysql://db/jorge",
    }
    result = run_jorge("worker", "qualifier", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "jorge: configuration error: DATABASE_URL is invalid: Value error, must start with postgresql://"
    ]


def test_a_missing_setting_says_how_to_fix_it(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "JORGE_HOME": str(tmp_path)}
    result = run_jorge("gateway", env=env, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "KAFKA_BOOTSTRAP_SERVERS is not set" in lines[0] and "jorge up" in lines[0]


def test_every_command_has_help(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "JORGE_HOME": str(tmp_path)}
    for command in ("up", "gateway", "worker", "migrate", "topics", "status", "orgs", "keys"):
        result = run_jorge(command, "--help", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "Usage" in result.stdout


def test_organisations_and_keys_are_managed_from_the_command_line(stack: StackUrls, tmp_path: Path) -> None:
    assert stack.database_url
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "JORGE_HOME": str(tmp_path),
        "DATABASE_URL": stack.database_url,
    }
    assert (
        "created organisation acme"
        in run_jorge("orgs", "create", "acme", "--name", "Acme", env=env, cwd=tmp_path).stdout
    )
    raised = run_jorge("orgs", "set-limit", "acme", "key_per_minute", "300", env=env, cwd=tmp_path)
    assert raised.returncode == 0 and "key_per_minute = 300" in raised.stdout
    unknown = run_jorge("orgs", "set-limit", "acme", "no_such_limit", "3", env=env, cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown limit" in unknown.stderr
    booking = "https://book.example.com/widget/booking/abc?lead={lead_id}"
    link = run_jorge("orgs", "set-booking-url", "acme", booking, env=env, cwd=tmp_path)
    assert link.returncode == 0 and "https://book.example.com/widget/booking/abc?lead=lead-001" in link.stdout
    assert run_jorge("orgs", "show-booking-url", "acme", env=env, cwd=tmp_path).stdout.strip() == booking
    refused = run_jorge("orgs", "set-booking-url", "acme", "not a url", env=env, cwd=tmp_path)
    assert refused.returncode == 2 and "https://" in refused.stderr
    assert run_jorge("orgs", "set-booking-url", "acme", "", env=env, cwd=tmp_path).returncode == 0
    assert run_jorge("orgs", "show-booking-url", "acme", env=env, cwd=tmp_path).stdout == ""
    created = run_jorge("keys", "create", "acme", "--name", "website", env=env, cwd=tmp_path).stdout
    assert "acme" in run_jorge("orgs", "list", env=env, cwd=tmp_path).stdout
    key_id = created.splitlines()[0].removeprefix("key id: ")
    secret = created.splitlines()[1].rsplit(" ", 1)[1]
    assert secret.startswith("jk_live_")
    listed = run_jorge("keys", "list", "acme", env=env, cwd=tmp_path).stdout
    assert key_id in listed and "active" in listed and secret not in listed
    assert run_jorge("keys", "revoke", key_id, env=env, cwd=tmp_path).returncode == 0
    assert "revoked" in run_jorge("keys", "list", "acme", env=env, cwd=tmp_path).stdout
    assert run_jorge("keys", "revoke", key_id, env=env, cwd=tmp_path).returncode == 1
