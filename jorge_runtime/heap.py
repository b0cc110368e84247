"""Keeping what a process built at start out of its later garbage collections."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Move every object alive now (modules, schemas, phone metadata: ~140,000 in the gateway)
    to the permanent generation. Measured under load in the gateway, a full collection then
    takes 2-4 ms instead of 75-90 ms, which was about a tenth of its CPU and of its p95 latency:
    what requests allocate, spans waiting for export most of all, brings full collections on.
    Call once, when start-up is complete."""
    gc.collect()
    gc.freeze()
