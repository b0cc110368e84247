"""External tools tests need: found on PATH or next to the interpreter, or the test FAILS.

`./jorge test` installs each of them (see `install_test_tools` in the `jorge` script); a test
that cannot find one fails with how to get it, never skips, so a missing tool is never mistaken
for a passing check.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

HOW = {
    "promtool": "Debian package prometheus (only its promtool binary)",
    "amtool": "Debian package prometheus-alertmanager (only its amtool binary)",
    "kubectl": "kubectl on PATH (Debian/Ubuntu: the Kubernetes apt repository, or a release binary)",
    "curl": "Debian package curl",
}


def require_tool(name: str) -> str:
    """The tool's path; fails the calling test when it is not installed."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} is not installed: run `./jorge test`, which installs it ({HOW.get(name, name)})")
    return found
