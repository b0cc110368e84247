"""Every curl example in the API document runs, in order, against a live gateway and qualifier."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import asyncpg

from services.gateway.tenancy import TenancyStore
from tests.support.services import REPO, ServiceProcess
from tests.support.tools import require_tool

API_DOC = REPO / "docs" / "API_SPEC.md"
_BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)


def runnable_examples(path: Path) -> list[str]:
    """The ```bash blocks that talk to the API ($JORGE_URL), in document order."""
    return [block for block in _BLOCK.findall(path.read_text()) if "$JORGE_URL" in block]


async def test_every_documented_example_works(
    gateway: ServiceProcess, qualifier: ServiceProcess, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    curl = require_tool("curl")  # the examples are curl commands
    tenancy = TenancyStore(pool)
    await tenancy.create_organization("org-docs", "Docs Realty")
    await tenancy.set_rate_limit("org-docs", "key_per_second", 1_000)  # the examples run back to back
    key = (await tenancy.issue_key("org-docs", "docs")).secret
    examples = runnable_examples(API_DOC)
    assert len(examples) >= 4
    env = {
        "PATH": f"{Path(curl).parent}:/usr/bin:/bin:/usr/local/bin",
        "JORGE_URL": gateway.base_url,
        "JORGE_KEY": key,
    }
    for example in examples:
        process = await asyncio.create_subprocess_exec(
            "bash", "-euo", "pipefail", "-c", example, env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
        assert process.returncode == 0, f"example failed:\n{example}\n{output.decode()}"
