"""A steady stream of leads, buyer matches and seller analyses into the gateway, with what each
request got back (the client side of the books)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

Kind = Literal["lead", "buyer", "seller"]
KINDS: tuple[Kind, ...] = ("lead", "buyer", "seller")
#: Longer than any answer the gateway may take (its Kafka publish timeout and a DB timeout).
CLIENT_TIMEOUT_SECONDS = 25.0


@dataclass(frozen=True, slots=True)
class Sent:
    """One request and its answer: ``result_id`` is set when the gateway accepted it."""

    kind: Kind
    subject_id: str  # lead_id, buyer_id or seller_id: unique per request
    email: str | None
    status: str  # the HTTP status, or "unreachable" / "timeout"
    seconds: float
    result_id: str | None


def body(kind: Kind, tag: str, n: int) -> tuple[str, str, dict[str, Any], str | None]:
    """(path, subject id, JSON body, email) of the n-th request of this kind."""
    if kind == "lead":
        lead_id, email = f"lead-{tag}-{n}", f"{tag}.{n}@example.com"
        return "/v1/leads/qualify", lead_id, {
            "lead_id": lead_id, "name": f"Chaos Lead{n}", "email": email, "phone": f"+1909555{n:04d}",
            "message": "Pre-approved for $750k, want a 3 bed in Victoria, moving in 2 months.",
        }, email  # fmt: skip
    if kind == "buyer":
        buyer_id = f"buyer-{tag}-{n}"
        return "/v1/buyers/match-properties", buyer_id, {
            "buyer_id": buyer_id, "budget_min": 600000, "budget_max": 800000, "bedrooms": [3, 4],
            "neighborhoods": ["Victoria", "Haven"],
        }, None  # fmt: skip
    seller_id = f"seller-{tag}-{n}"
    return "/v1/sellers/analyze", seller_id, {
        "seller_id": seller_id, "property_address": f"{n} Oak Ave, Rancho Cucamonga, CA", "bedrooms": 4,
        "bathrooms": 2.5, "square_feet": 2500, "condition": "good", "neighborhood": "Victoria",
        "latitude": 34.128, "longitude": -117.535, "year_built": 1998, "postal_code": "91739",
    }, None  # fmt: skip


_RESULT_FIELD = {"lead": "qualification_id", "buyer": "match_session_id", "seller": "analysis_id"}


@dataclass
class Stream:
    """Sends one request every ``interval`` seconds, cycling the kinds, until stopped."""

    base_url: str
    api_key: str
    tag: str
    interval: float = 1.0
    sent: list[Sent] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> Stream:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> list[Sent]:
        """Stop sending; wait for the requests in flight."""
        self._stop.set()
        assert self._task is not None
        await self._task
        return self.sent

    def statuses(self) -> Counter[str]:
        return Counter(s.status for s in self.sent)

    async def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        async with httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=CLIENT_TIMEOUT_SECONDS
        ) as client:
            in_flight: set[asyncio.Task[None]] = set()
            n = 0
            while not self._stop.is_set():
                task = asyncio.create_task(self._send(client, KINDS[n % 3], n))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                n += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval)
            await asyncio.gather(*in_flight)

    async def _send(self, client: httpx.AsyncClient, kind: Kind, n: int) -> None:
        path, subject, payload, email = body(kind, self.tag, n)
        started = time.monotonic()
        result_id = None
        try:
            response = await client.post(path, json=payload)
            status = str(response.status_code)
            if response.status_code in (201, 202):
                result_id = str(response.json()[_RESULT_FIELD[kind]])
        except httpx.TimeoutException:
            status = "timeout"
        except httpx.TransportError:
            status = "unreachable"  # the gateway is down: nothing was accepted
        self.sent.append(Sent(kind, subject, email, status, time.monotonic() - started, result_id))
