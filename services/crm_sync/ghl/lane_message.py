"""One message on a priority lane or a delay topic, as the sync handler and the failure router
receive it."""

from __future__ import annotations

from dataclasses import dataclass

from services.crm_sync.ghl.budget import Priority


@dataclass(frozen=True)
class LaneMessage:
    """A lane or delay-topic message: the event as it came (body, text headers, key), its lane
    and the attempt it is on (1 for its first delivery)."""

    body: bytes
    headers: dict[str, str]
    key: str | None
    lane: Priority
    attempt: int
