"""The README's first command: `jorge up` runs everything, `jorge status` finds it, Ctrl-C stops it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from jorge_cli.service_process import GATEWAY_NICENESS
from jorge_cli.stack import StackUrls, free_port
from jorge_runtime.settings import Settings
from tests.support.ghl import contract_problems
from tests.support.services import REPO, settings_env

READY_LINE = "Press Ctrl-C to stop everything."


async def start_up(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, list[str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jorge_cli",
        "up",
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []
    assert process.stdout
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        raw = await asyncio.wait_for(process.stdout.readline(), timeout=90)
        if not raw:
            raise AssertionError("jorge up exited early:\n" + "".join(lines))
        lines.append(raw.decode())
        if READY_LINE in lines[-1]:
            return process, lines
    raise AssertionError("jorge up never became ready:\n" + "".join(lines))


async def stop_up(process: asyncio.subprocess.Process) -> str:
    process.send_signal(signal.SIGINT)
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, output.decode()
    return output.decode()


def status(env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "jorge_cli", "status", "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return json.loads(result.stdout)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def plain_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DATABASE_", "REDIS_"))}
    return env | {"JORGE_HOME": str(home), "API_PORT": str(free_port())}


async def qualify(base_url: str, key: str, lead_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as client:
        created = await client.post(
            "/v1/leads/qualify",
            json={
                "lead_id": lead_id,
                "phone": "+1 909 555 0143",
                "message": "Cash buyer, 4 bed in Etiwanda ASAP",
            },
        )
        assert created.status_code == 201, created.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            view = (await client.get(f"/v1/leads/{lead_id}/qualification")).json()
            if view["status"] == "completed":
                return view
            await asyncio.sleep(0.2)
    raise AssertionError("the lead was not qualified")


async def smoke_test(url: str, key: str) -> subprocess.CompletedProcess[str]:
    """scripts/smoke_test.sh with this virtualenv's `jorge` first on PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return await asyncio.to_thread(
        subprocess.run,
        [str(REPO / "scripts" / "smoke_test.sh"), url, key, "--timeout", "60"],
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


async def test_up_runs_everything_embedded_and_keeps_demo_data(stack_dir: Path) -> None:
    env = plain_env(stack_dir / "home")
    process, lines = await start_up(env)
    try:
        output = "".join(lines)
        assert "embedded kafka, postgres, redis" in output
        assert "curl -s -X POST" in output
        first = status(env)
        assert first["running"] is True
        assert {c["health"] for c in first["components"].values()} == {"ok"}
        assert set(first["components"]) == {
            "gateway",
            "qualifier",
            "matcher",
            "seller_analyzer",
            "crm_sync.ghl",  # crm_sync's two halves, one process each
            "crm_sync.webhooks",
            "ghl_sandbox",
            "kafka",
            "postgresql",
            "redis",
        }
        key = first["demo"]["api_key"]
        assert key in output
        # Short of cores, the workers come first: the gateway accepts leads as fast as they finish.
        niceness = {
            name: os.getpriority(os.PRIO_PROCESS, first["components"][name]["pid"])
            for name in ("gateway", "qualifier")
        }
        assert niceness["gateway"] == min(19, niceness["qualifier"] + GATEWAY_NICENESS)
        # "up" means every consumer already holds its partitions: the first lead waits for nothing.
        async with httpx.AsyncClient(timeout=5) as client:
            for name in ("qualifier", "matcher", "seller_analyzer", "crm_sync.ghl", "crm_sync.webhooks"):
                ready = await client.get(f"{first['components'][name]['url']}/health/ready")
                assert ready.status_code == 200, (name, ready.text)
                assert ready.json()["partitions_assigned"] >= 6 * ready.json()["consumers"], name
        view = await qualify(first["components"]["gateway"]["url"], key, "demo-lead")
        assert view["result"]["temperature"] == "hot"
        # Without a GHL token the lead lands in the GHL sandbox, readable as JSON.
        crm_url = first["components"]["ghl_sandbox"]["url"]
        async with httpx.AsyncClient(timeout=5) as client:
            deadline = time.monotonic() + 30
            # The lead's qualification and the matcher's homes for it reach GHL in either order.
            while (
                not (contacts := (await client.get(f"{crm_url}/")).json()["contacts"])
                or not contacts[0]["notes"]
                or "temperature:hot" not in contacts[0]["tags"]
            ):
                assert time.monotonic() < deadline, f"the lead never reached the GHL sandbox: {contacts}"
                await asyncio.sleep(0.3)
        assert await contract_problems(crm_url) == []  # every call crm_sync made fit GHL's spec
        # The post-deploy smoke test, as an operator runs it, against this stack.
        smoke = await smoke_test(first["components"]["gateway"]["url"], key)
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr
        assert smoke.stdout.count("PASS") == 4 and "Smoke test passed" in smoke.stdout
        wrong = await smoke_test(first["components"]["gateway"]["url"], "jk_not_a_key")
        assert wrong.returncode == 1 and "FAIL" in wrong.stdout
        # /metrics and the detailed health are on the admin port only.
        admin = first["components"]["gateway"]["admin_url"]
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(f"{admin}/metrics")).status_code == 200
            assert (await client.get(f"{first['components']['gateway']['url']}/metrics")).status_code == 404
    finally:
        stopped = await stop_up(process)
    assert "Stopped." in stopped
    children = [c["pid"] for c in first["components"].values() if c.get("pid")]
    assert not any(alive(pid) for pid in children)
    assert status(env) == {"running": False}

    process, _ = await start_up(env)
    try:
        again = status(env)
        assert again["demo"]["api_key"] == key  # the data directory survived the restart
        async with httpx.AsyncClient(
            base_url=again["components"]["gateway"]["url"], headers={"Authorization": f"Bearer {key}"}
        ) as client:
            kept = await client.get("/v1/leads/demo-lead/qualification")
        assert kept.json()["status"] == "completed"
    finally:
        await stop_up(process)


async def test_up_with_external_urls_starts_nothing_embedded(
    tmp_path: Path, stack: StackUrls, settings: Settings
) -> None:
    home = tmp_path / "home"
    env = settings_env(settings) | {"JORGE_HOME": str(home), "API_PORT": str(free_port())}
    process, lines = await start_up(env)
    try:
        assert "with external services" in "".join(lines)
        current = status(env)
        assert current["components"]["gateway"]["health"] == "ok"
        assert not (home / "postgres").exists()
        assert not (home / "logs" / "kafka.log").exists()
        assert not (home / "logs" / "redis.log").exists()
    finally:
        await stop_up(process)
