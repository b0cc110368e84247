"""The running stack's state file, so commands in other terminals find it with no environment."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from jorge_runtime.settings import Settings, load_settings

STATE_FILE = "state.json"


def project_home() -> Path:
    """Where `jorge up` keeps its data: $JORGE_HOME, else .jorge/ in the project (git-ignored)."""
    if home := os.environ.get("JORGE_HOME"):
        return Path(home).resolve()
    checkout = Path(__file__).resolve().parents[1]
    base = checkout if (checkout / "pyproject.toml").exists() else Path.cwd()
    return base / ".jorge"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_state(home: Path, state: dict[str, Any]) -> None:
    """Atomically write the state file, readable only by its owner (it holds the demo key)."""
    path = home / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, default=str))
    tmp.chmod(0o600)
    tmp.replace(path)


def read_running_state(home: Path | None = None) -> dict[str, Any] | None:
    """The state of a `jorge up` that is still running, or None."""
    path = (home or project_home()) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return state if _alive(int(state.get("pid", 0))) else None


def clear_state(home: Path) -> None:
    """Forget the stack's processes when it stops."""
    (home / STATE_FILE).unlink(missing_ok=True)


def settings_for_command() -> Settings:
    """Settings from the environment and .env, completed from a running `jorge up` if any."""
    settings = load_settings()
    state = read_running_state()
    if state is None:
        return settings
    # Only fill what the environment and .env left unset: an explicit value always wins.
    overrides = {
        name.lower(): value
        for name, value in state.get("environment", {}).items()
        if name.lower() not in settings.model_fields_set
    }
    return load_settings(**overrides) if overrides else settings
