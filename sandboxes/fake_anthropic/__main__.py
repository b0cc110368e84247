"""Serve the fake API in the foreground: ``python -m sandboxes.fake_anthropic --port 8765``.

``--responder module:function`` picks what the fake model answers (a function from the request
body to the tool input), e.g. ``tests.support.fake_claude:rules_responder``.
"""

from __future__ import annotations

import argparse
import importlib

import uvicorn

from sandboxes.fake_anthropic.server import FakeAnthropic
from sandboxes.fake_anthropic.wire import Responder, minimal_answer


def _responder(spec: str | None) -> Responder:
    if not spec:
        return minimal_answer
    module, _, name = spec.partition(":")
    responder: Responder = getattr(importlib.import_module(module), name)
    return responder


def main() -> None:
    """Serve the fake API (for demos: point ANTHROPIC_BASE_URL at it)."""
    parser = argparse.ArgumentParser(description="A local fake of the Anthropic Messages API.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--responder", help="module:function building the tool input from a request")
    args = parser.parse_args()
    fake = FakeAnthropic(_responder(args.responder))
    uvicorn.run(fake.app, host="127.0.0.1", port=args.port, log_level="info")


if __name__ == "__main__":
    main()
