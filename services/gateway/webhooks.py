"""Gateway routes for /v1/webhooks (filled in by the gateway API issue)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["webhooks"])
