"""Gateway routes for /v1/buyers (filled in by the gateway API issue)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["buyers"])
