"""``python -m sandboxes.ghl [--port N] [--burst 100] [--interval-ms 10000] [--daily 200000]
[--daily-reset-ms 86400000] [--daily-reset-header]``."""

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
    parser.add_argument("--burst", type=int, default=100, help="requests per window and location")
    parser.add_argument("--interval-ms", type=int, default=10_000, help="window length")
    parser.add_argument("--daily", type=int, default=200_000, help="requests per day and location")
    parser.add_argument(
        "--daily-reset-ms",
        type=int,
        default=86_400_000,
        help="daily window length; a token's first request opens one, the first after it the next",
    )
    parser.add_argument(
        "--daily-reset-header",
        action="store_true",
        help="fault (reported by a user, not documented): send x-ratelimit-daily-reset, ms until the "
        "daily window closes",
    )
    args = parser.parse_args()
    limits = Limits(
        burst=args.burst,
        interval_ms=args.interval_ms,
        daily=args.daily,
        daily_reset_ms=args.daily_reset_ms,
        daily_reset_header=args.daily_reset_header,
    )
    state = SandboxState(limits)
    uvicorn.run(create_app(state), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
