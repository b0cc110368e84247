"""Composition root of the seller_analyzer worker (its handlers arrive with its own issue)."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from jorge_runtime.settings import Settings
from jorge_runtime.worker import bare_worker_app

SERVICE = "seller_analyzer"


def create_app(settings: Settings) -> AsgiFastStream:
    """Start the worker with its broker, pool and health endpoint."""
    return bare_worker_app(SERVICE, settings)
