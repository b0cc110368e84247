"""Errors reach Sentry (a local endpoint speaking its envelope protocol) tagged and PII-free."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sentry_sdk
from pydantic import SecretStr

from jorge_runtime.observability.error_reporting import init_error_reporting, scrub_event
from jorge_runtime.settings import Settings


class _Collector(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        encoding = self.headers.get("Content-Encoding")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "br":  # the SDK prefers brotli whenever the module is installed
            import brotli

            body = brotli.decompress(body)
        type(self).received.append(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def sentry_endpoint() -> Iterator[str]:
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://publickey@127.0.0.1:{server.server_port}/1"
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)  # later tests report nothing
    server.shutdown()


def test_no_dsn_means_no_sentry() -> None:
    assert init_error_reporting(Settings(sentry_dsn=None), "gateway") is False


def test_an_error_reaches_sentry_tagged_and_scrubbed(sentry_endpoint: str) -> None:
    settings = Settings(
        environment="staging", sentry_dsn=SecretStr(sentry_endpoint), sentry_release="jorge@9.9.9"
    )
    assert init_error_reporting(settings, "qualifier")
    try:
        raise ValueError("lead +1 909 555 0143 / ana@example.com could not be qualified")
    except ValueError as error:
        sentry_sdk.capture_exception(error)
    deadline = time.monotonic() + 30
    while not (events := _events()):
        assert time.monotonic() < deadline, "nothing reached the Sentry endpoint"
        time.sleep(0.05)
    event = events[0]
    assert (event["environment"], event["release"]) == ("staging", "jorge@9.9.9")
    assert event["tags"]["service"] == "qualifier"
    text = json.dumps(event)
    assert "555 0143" not in text and "ana@example.com" not in text
    assert "[PHONE]" in text and "[EMAIL]" in text


def _events() -> list[dict[str, Any]]:
    """The error events among the envelopes received (header line, then item header/payload pairs)."""
    items = [json.loads(line) for body in list(_Collector.received) for line in body.splitlines()[2::2]]
    return [item for item in items if item.get("exception")]


def test_scrub_event_redacts_nested_strings() -> None:
    event = {"extra": {"to": ["ana@example.com"], "n": 3}, "message": "Bearer abcdefghijkl"}
    assert scrub_event(event) == {"extra": {"to": ["[EMAIL]"], "n": 3}, "message": "Bearer [REDACTED]"}
