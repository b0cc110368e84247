"""Checking the books after a scenario: every accepted request answered, in GHL once and
webhooked with one webhook-id; nothing refused processed. Each scenario's counts go to a file
the terminal summary prints (conftest.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from jorge_runtime.settings import Settings
from services.crm_sync.ghl.notes import MARKER_PREFIX
from tests.chaos.platform import Platform, own_service, running_platform
from tests.chaos.stream import Sent, Stream
from tests.chaos.summary import RESULTS_DIR

#: How long the platform gets to finish everything accepted once the scenario is over.
SETTLE_SECONDS = 120.0

#: Per kind: table, id column, subject column and the status that is not final yet.
_TABLES = {
    "lead": ("qualifications", "qualification_id", "lead_id", "in_progress"),
    "buyer": ("match_sessions", "id", "buyer_id", "pending"),
    "seller": ("seller_analyses", "id", "seller_id", "pending"),
}
#: Requests a worker finished, by result id and by subject (a row the gateway left pending when
#: it refused a request is not "processed").
_FINAL = {
    kind: f"""SELECT {id_} AS id, {subject} AS subject FROM {table}
               WHERE organization_id = $1 AND status <> '{wip}'"""
    for kind, (table, id_, subject, wip) in _TABLES.items()
}
#: The id that names a message in each webhook event's data.
_WEBHOOK_ID_FIELD = {
    "lead.qualified": "qualification_id",
    "buyer.matched": "match_session_id",
    "seller.analyzed": "analysis_id",
}


@dataclass
class Summary:
    """A scenario's figures (sent, accepted, completed, lost, duplicated, and more)."""

    scenario: str
    sent: int
    accepted: int
    completed: int
    lost: int
    duplicated: int
    refused_but_processed: int
    dead_lettered: int
    statuses: dict[str, int]
    slowest_answer_seconds: float
    problems: list[str] = field(default_factory=list)

    def save(self) -> None:
        RESULTS_DIR.mkdir(exist_ok=True)
        (RESULTS_DIR / f"{self.scenario}.json").write_text(json.dumps(asdict(self)))


async def _state(platform: Platform, pool: asyncpg.Pool) -> dict[str, Any]:
    rows = {kind: await pool.fetch(q, platform.organization) for kind, q in _FINAL.items()}
    dead = await pool.fetchval(
        "SELECT count(*) FROM crm_dead_letters WHERE organization_id = $1", platform.organization
    )
    final = {kind: {r["id"] for r in found} for kind, found in rows.items()}
    processed = {kind: {r["subject"] for r in found} for kind, found in rows.items()}
    webhook_ids: dict[str, set[str]] = defaultdict(set)
    for request in platform.receiver.requests:
        body = json.loads(request.body)
        message = body.get("data", {}).get(_WEBHOOK_ID_FIELD.get(body.get("event"), ""))
        if isinstance(message, str):  # one of ours (a qualified buyer lead's own match is not)
            webhook_ids[message].add(request.headers.get("webhook-id", ""))
    contacts = await platform.sandbox.contacts(platform.location_id)
    by_email: dict[str, int] = defaultdict(int)
    markers: dict[str, int] = defaultdict(int)
    for contact in contacts:
        by_email[str(contact.get("email") or "")] += 1
        for note in contact.get("notes", []):
            last = str(note.get("body", "")).rstrip().rsplit("\n", 1)[-1]
            if last.startswith(MARKER_PREFIX):
                markers[last] += 1
    return {
        "final": final, "processed": processed, "webhook_ids": webhook_ids, "by_email": by_email,
        "markers": markers, "dead_lettered": int(dead),
    }  # fmt: skip


def _done(sent: Sent, state: dict[str, Any]) -> bool:
    if sent.result_id not in state["final"][sent.kind] or not state["webhook_ids"].get(sent.result_id):
        return False
    return sent.kind != "lead" or state["by_email"].get(sent.email or "", 0) >= 1


async def check_books(scenario: str, platform: Platform, sent: list[Sent]) -> Summary:
    """Wait (up to SETTLE_SECONDS) for everything accepted to be done, then count."""
    assert platform.settings.database_url
    accepted = [s for s in sent if s.result_id is not None]
    refused = [s for s in sent if s.result_id is None]
    pool = await asyncpg.connect(platform.settings.database_url)
    try:
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            state = await _state(platform, pool)  # type: ignore[arg-type]
            pending = [s for s in accepted if not _done(s, state)]
            if not pending or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        await asyncio.sleep(2.0)  # late duplicates would land now
        state = await _state(platform, pool)  # type: ignore[arg-type]
    finally:
        await pool.close()
    problems = [f"lost {s.kind} {s.subject_id} ({s.result_id})" for s in accepted if not _done(s, state)]
    duplicates = [
        f"{mid}: {len(ids)} webhook-ids" for mid, ids in state["webhook_ids"].items() if len(ids) > 1
    ]
    duplicates += [f"GHL contact {email}: {n}" for email, n in state["by_email"].items() if n > 1]
    duplicates += [f"GHL note {marker}: {n}" for marker, n in state["markers"].items() if n > 1]
    refused_processed = [s for s in refused if s.subject_id in state["processed"][s.kind]]
    problems += duplicates + [
        f"refused ({s.status}) but processed: {s.subject_id}" for s in refused_processed
    ]
    statuses: dict[str, int] = defaultdict(int)
    for s in sent:
        statuses[s.status] += 1
    summary = Summary(
        scenario=scenario,
        sent=len(sent),
        accepted=len(accepted),
        completed=len(accepted) - sum(1 for s in accepted if not _done(s, state)),
        lost=sum(1 for s in accepted if not _done(s, state)),
        duplicated=len(duplicates),
        refused_but_processed=len(refused_processed),
        dead_lettered=state["dead_lettered"],
        statuses=dict(statuses),
        slowest_answer_seconds=round(max((s.seconds for s in sent), default=0.0), 2),
        problems=problems[:20],
    )
    summary.save()
    return summary


def assert_books(summary: Summary) -> None:
    """The promises: nothing lost or doubled, nothing refused processed, no good message
    dead-lettered, no 500, no hang (a client timeout)."""
    assert summary.accepted > 0, summary
    assert (summary.lost, summary.duplicated) == (0, 0), summary.problems
    assert summary.refused_but_processed == 0, summary.problems
    assert summary.dead_lettered == 0, "good messages were dead-lettered (see jorge dlq list)"
    unexpected = {s: n for s, n in summary.statuses.items() if s not in ("201", "202", "503", "unreachable")}
    assert not unexpected, f"answers other than accepted, 503 or gateway down: {unexpected}"


Disruption = Callable[[Platform], Awaitable[None]]


async def run_scenario(
    scenario: str, platform: Platform, disrupt: Disruption, *, calm_seconds: float = 4.0
) -> Summary:
    """Stream requests; disrupt after ``calm_seconds``; keep streaming as long again after it
    ended; then check the books, print nothing, save the counts and assert the promises."""
    tag = scenario.replace("_", "")[:12]
    stream = Stream(platform.gateway_url, platform.api_key, tag).start()
    try:
        await asyncio.sleep(calm_seconds)
        await disrupt(platform)
        await asyncio.sleep(calm_seconds)
    finally:
        sent = await stream.stop()
    summary = await check_books(scenario, platform, sent)
    assert_books(summary)
    return summary


async def restart_scenario(
    scenario: str, what: str, settings: Settings, directory: Path, log_dir: Path, down_seconds: float
) -> None:
    """A scenario whose disruption is a restart of its own PostgreSQL or Redis, down a while."""
    async with own_service(settings, directory, what) as (stack, own):

        async def restart(platform: Platform) -> None:
            await asyncio.to_thread(stack.restart, what, down_seconds)

        async with running_platform(own, log_dir) as platform:
            await run_scenario(scenario, platform, restart)
