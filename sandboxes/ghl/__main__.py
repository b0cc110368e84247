"""``python -m sandboxes.ghl [--port N] [--burst 100] [--interval-ms 10000] [--daily 200000]``."""

from __future__ import annotations

import argparse

import uvicorn

from sandboxes.ghl.app import create_app
from sandboxes.ghl.state import Limits, SandboxState


def main() -> None:
    """Serve the sandbox until interrupted."""
    parser = argparse.ArgumentParser(description="GoHighLevel API v2 sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--burst", type=int, default=100, help="requests per window and token")
    parser.add_argument("--interval-ms", type=int, default=10_000, help="window length")
    parser.add_argument("--daily", type=int, default=200_000, help="requests per day and token")
    args = parser.parse_args()
    state = SandboxState(Limits(burst=args.burst, interval_ms=args.interval_ms, daily=args.daily))
    uvicorn.run(create_app(state), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
