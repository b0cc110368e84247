"""The GHL sandbox as a child process for tests, and LeadQualified events to feed crm_sync."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from jorge_cli.stack import free_port
from schemas.envelope import EventEnvelope, utc_now
from schemas.leads import LeadQualified, LeadQualifiedPayload, LeadToQualify
from schemas.qualification import FinancialReadiness, FinancingStatus, Intent, Qualification, Temperature
from schemas.topics import LEAD_QUALIFIED, TopicNames
from tests.support.services import REPO, KafkaRecord


async def contract_problems(url: str) -> list[str]:
    """Every request the sandbox at ``url`` refused because GHL's spec refuses it, and every
    answer it gave that GHL's response schemas do not allow (empty: every call fit the contract)."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{url}/_sandbox/violations")
        response.raise_for_status()
        found = response.json()
    return [f"refused: {r}" for r in found["refused"]] + [f"answer: {v}" for v in found["violations"]]


@dataclass
class Sandbox:
    """A running `python -m sandboxes.ghl`; read and steer it over HTTP."""

    url: str
    process: subprocess.Popen[bytes]

    @classmethod
    async def start(
        cls,
        log_path: Path,
        *,
        burst: int,
        interval_ms: int,
        daily: int = 200_000,
        daily_reset_ms: int = 86_400_000,
        daily_reset_header: bool = False,
    ) -> Sandbox:
        port = free_port()
        argv = [sys.executable, "-m", "sandboxes.ghl", "--port", str(port), "--burst", str(burst),
                "--interval-ms", str(interval_ms), "--daily", str(daily),
                "--daily-reset-ms", str(daily_reset_ms)]  # fmt: skip
        if daily_reset_header:
            argv.append("--daily-reset-header")
        with log_path.open("ab") as out:
            process = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)  # noqa: ASYNC220
        sandbox = cls(f"http://127.0.0.1:{port}", process)
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient(timeout=1) as client:
            while time.monotonic() < deadline:
                try:
                    if (await client.get(f"{sandbox.url}/health")).status_code == 200:
                        return sandbox
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        sandbox.stop()
        raise RuntimeError(f"GHL sandbox did not start; see {log_path}")

    @classmethod
    @asynccontextmanager
    async def running(cls, log_path: Path, **limits: Any) -> AsyncIterator[Sandbox]:
        """A sandbox (``limits`` as for ``start``) for the body; stopped afterwards, and, when the
        body succeeded, checked: no request refused by GHL's spec, no answer outside it."""
        sandbox = await cls.start(log_path, **limits)
        try:
            yield sandbox
        except BaseException:
            sandbox.stop()
            raise
        await sandbox.stop_checked()

    async def contract_problems(self) -> list[str]:
        return await contract_problems(self.url)

    async def stop_checked(self) -> None:
        """Stop the sandbox; fail (AssertionError) if any call broke GHL's contract."""
        try:
            problems = await self.contract_problems()
        finally:
            self.stop()
        if problems:
            raise AssertionError(f"{len(problems)} calls broke GHL's contract: {problems[:20]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    async def _get(self, path: str) -> Any:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"{self.url}{path}")
            response.raise_for_status()
            return response.json()

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(f"{self.url}{path}", json=body)
            response.raise_for_status()
            return response.json()

    async def contacts(self, location_id: str | None = None) -> list[dict[str, Any]]:
        query = f"?locationId={location_id}" if location_id else ""
        return list((await self._get(f"/_sandbox/contacts{query}"))["contacts"])

    async def stats(self) -> dict[str, Any]:
        return dict(await self._get("/_sandbox/stats"))

    async def faults(self, **faults: Any) -> None:
        await self._post("/_sandbox/faults", faults)

    async def limits(self, **limits: int | str | bool) -> None:
        """Every location's limits, or with ``location=`` one location's (or token's)."""
        await self._post("/_sandbox/limits", limits)

    async def accepted(self) -> dict[str, list[float]]:
        """Arrival times (epoch s) of the requests let through, per location (or token)."""
        return dict((await self._get("/_sandbox/requests"))["by_location"])

    async def revoke(self, token: str) -> None:
        await self._post("/_sandbox/revoke", {"token": token})

    async def token(
        self,
        token: str,
        *,
        location_id: str | None = None,
        scopes: list[str] | None = None,
        expired: bool = False,
    ) -> None:
        """Describe a token: its location (limits are per location), scopes, expiry."""
        body = {"token": token, "location_id": location_id, "scopes": scopes, "expired": expired}
        await self._post("/_sandbox/tokens", body)

    async def custom_fields(self, location_id: str, fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Define a location's contact custom fields; GHL's listing of them (with ids)."""
        answer = await self._post("/_sandbox/custom_fields", {"locationId": location_id, "fields": fields})
        return list(answer["customFields"])

    async def oauth(self, **app: Any) -> dict[str, Any]:
        """Register a Marketplace app (client_id, client_secret) installed on ``location_id``;
        the first access and refresh tokens (see /_sandbox/oauth)."""
        return dict(await self._post("/_sandbox/oauth", app))


def qualified_event(
    organization_id: str, n: int, *, hot: bool, source: str | None = "zillow"
) -> LeadQualified:
    """A qualified lead with its own email and phone, hot or cold."""
    lead = LeadToQualify(
        lead_id=f"lead-{n:05d}",
        name=f"Lead Number{n}",
        email=f"lead{n}@example.com",
        phone=f"+1909555{n:04d}",
        message=f"Looking for a home, message {n}",
        source=source,
    )
    qualification = Qualification(
        intent=Intent.BUYER,
        temperature=Temperature.HOT if hot else Temperature.COLD,
        financial_readiness=FinancialReadiness(
            status=FinancingStatus.PRE_APPROVED, pre_approved=True, budget_min=500_000, budget_max=750_000 + n
        ),
        next_action="Call within the hour" if hot else "Add to nurture campaign",
        confidence=0.9,
        engine="rules-v1",
    )
    return LeadQualified(
        organization_id=organization_id,
        correlation_id=f"req-{n}",
        payload=LeadQualifiedPayload(
            qualification_id=f"qual-{n:05d}", lead=lead, qualification=qualification, completed_at=utc_now()
        ),
    )


async def publish(bootstrap: str, topic: str, events: list[EventEnvelope], key_of: Any) -> None:
    """Publish events as the producing services would (keyed, with the envelope headers)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sends = [
            await producer.send(
                topic,
                event.model_dump_json().encode(),
                key=key_of(event).encode(),
                headers=[(k, v.encode()) for k, v in event.kafka_headers().items()],
            )
            for event in events
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def publish_qualified(bootstrap: str, topics: TopicNames, events: list[LeadQualified]) -> None:
    await publish(bootstrap, topics(LEAD_QUALIFIED), list(events), lambda e: e.payload.lead.lead_id)


async def topic_records(bootstrap: str, topic: str) -> list[KafkaRecord]:
    """Everything a topic holds right now, read without a consumer group (no join to wait for)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    records: list[KafkaRecord] = []
    try:
        await consumer.topics()  # loads the metadata partitions_for_topic reads
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + 10
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(
                    KafkaRecord(m.topic, m.key.decode() if m.key else None, m.value or b"",
                                {k: v.decode() for k, v in m.headers})
                    for m in messages
                )  # fmt: skip
    finally:
        await consumer.stop()
    return records
