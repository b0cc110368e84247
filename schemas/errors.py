"""The one error model of the HTTP API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body: a machine-readable code and a sentence for a human."""

    error: str = Field(
        description="Stable machine-readable code, e.g. invalid_phone.", examples=["invalid_phone"]
    )
    message: str = Field(description="What went wrong and what to do, for a human.")
    details: list[dict[str, Any]] | None = Field(default=None, description="Per-field problems, when any.")
    retry_after: int | None = Field(default=None, description="With 429: seconds until the limit resets.")
    request_id: str | None = None
