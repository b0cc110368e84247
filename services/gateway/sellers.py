"""Gateway routes for /v1/sellers (filled in by the gateway API issue)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["sellers"])
