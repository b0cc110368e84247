"""prometheus_client's multiprocess mode, switched on before prometheus_client is imported.

prometheus_client picks in-memory or file-backed values when it is first imported, from
``PROMETHEUS_MULTIPROC_DIR``: this module must not import it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The shared metrics directory of this process group, if multiprocess mode is on."""
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess_dir(path: str | None) -> str:
    """Create ``path`` (a new temporary directory if None), empty it, export it; return it.

    Call once before the worker processes start: files left by a previous run would add its
    counters to this one's. Only prometheus_client's ``*.db`` files are ever deleted.
    """
    directory = Path(path) if path else Path(tempfile.mkdtemp(prefix="jorge-metrics-"))
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(directory)
    return str(directory)
