"""How close crm_sync gets to GoHighLevel's rate limit, and how fast a lead reaches the CRM.

Three phases against the GHL sandbox (``python -m sandboxes.ghl``), with real crm_sync worker
processes on the embedded stack (or the services given by KAFKA_BOOTSTRAP_SERVERS,
DATABASE_URL, REDIS_URL):

1. Latency, nothing throttling (sandbox limit 100,000 per 10 s): ``--latency-leads`` qualified
   leads are published one at a time, ``--spacing`` seconds apart; for each, the time from the
   publish to the contact's creation in the sandbox, and to its note (the last write).
2. Drain, GHL's real figures (100 requests per 10 s per location, the budget's defaults): a
   backlog of ``--leads`` qualified leads (a third hot: they also get an opportunity) is
   published before ``--replicas`` crm_sync workers share one location's budget. The sandbox
   records when each request it let through arrived. Printed: requests, 429s answered because
   of the limit, and the sustained share of the allowed rate: request i + burst may arrive one
   interval after request i at the earliest, so interval / mean(t[i + burst] - t[i]) is the
   share of the limit used, whether the budget sends in bursts or evenly.
3. Two locations side by side, at production size: ``--busy-leads`` (500) leads for
   one organisation (GHL's real figures) while another organisation's location has spent its
   daily budget (``--spent-leads`` leads, a daily limit of 12 requests whose window resets
   after ``--spent-reset`` seconds, no reset header, as GHL documents). Printed: the busy
   location's achieved rate as a ratio to its allowed rate (and to phase 2's, the baseline of
   the same run), its self-caused 429s, lost and duplicated leads in both locations, and how
   many of the spent location's leads synced after its reset.

Every GHL call of the run is checked against GHL's spec (``Sandbox.running``): the count of
refused requests and out-of-spec answers is printed, and the run fails on any.

Run from the repository root:
    .venv/bin/python -m bench.ghl_drain [--leads 120] [--replicas 2] [--latency-leads 30]
        [--busy-leads 500] [--spent-leads 6] [--spent-reset 40] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
from pydantic import SecretStr

from bench.environment import bench_environment, log
from bench.pipeline_throughput import cpu_seconds, parked_events
from jorge_cli.service_process import ServiceProcess
from jorge_runtime.credential_cipher import CredentialCipher, generate_key
from jorge_runtime.settings import Settings
from schemas.qualification import Temperature
from schemas.topics import TopicNames
from services.crm_sync.ghl.credential_store import CredentialStore
from tests.support.ghl import Sandbox, publish_qualified, qualified_event

GHL_BURST, GHL_INTERVAL_MS = 100, 10_000


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def latency_phase(
    sandbox: Sandbox, settings: Settings, org: str, leads: int, spacing: float
) -> dict[str, Any]:
    """Publish leads one at a time; time publish -> contact created and publish -> note written."""
    assert settings.kafka_bootstrap_servers
    await sandbox.limits(burst=100_000, interval_ms=10_000, daily=10_000_000)
    topics = TopicNames(settings.kafka_topic_prefix)
    location = settings.ghl_location_id
    published: dict[str, float] = {}
    for n in range(leads):
        event = qualified_event(org, n, hot=n % 3 == 0)
        published[f"lead{n}@example.com"] = time.time()
        await publish_qualified(settings.kafka_bootstrap_servers, topics, [event])
        await asyncio.sleep(spacing)

    async def all_noted() -> bool:
        contacts = await sandbox.contacts(location)
        return len(contacts) == leads and all(c["notes"] for c in contacts)

    await wait_for(all_noted, 60, "every lead of the latency phase")
    created, noted = [], []
    for contact in await sandbox.contacts(location):
        sent = published[contact["email"]]
        created.append(_epoch(contact["dateAdded"]) - sent)
        noted.append(_epoch(contact["notes"][0]["dateAdded"]) - sent)
    return {
        "leads": leads,
        "contact_ms": _summary(created),
        "note_ms": _summary(noted),
    }


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "p50": round(statistics.median(ms), 1),
        "p95": round(percentile(ms, 0.95), 1),
        "max": round(max(ms), 1),
    }


async def drain_phase(
    sandbox: Sandbox,
    settings: Settings,
    org: str,
    pool: Any,
    leads: int,
    workers: list[ServiceProcess],
    spent: tuple[str, int, float] | None = None,
) -> dict[str, Any]:
    """A backlog drained by every worker under GHL's real burst limit; with ``spent`` (another
    organisation, its leads, its daily window in s) that organisation's location has a spent
    daily budget meanwhile."""
    assert settings.kafka_bootstrap_servers
    location = f"drain-{uuid.uuid4().hex[:6]}"
    store = CredentialStore(pool, CredentialCipher.from_setting(settings.crm_credentials_key))
    await store.save(org, location, SecretStr(f"token-{location}"), "pipeline-bench")
    await sandbox.limits(burst=GHL_BURST, interval_ms=GHL_INTERVAL_MS, daily=200_000)
    topics = TopicNames(settings.kafka_topic_prefix)
    spent_events: list[Any] = []
    if spent is not None:
        spent_org, spent_leads, reset_s = spent
        spent_location = f"spent-{uuid.uuid4().hex[:6]}"
        await store.save(spent_org, spent_location, SecretStr(f"token-{spent_location}"))
        await sandbox.limits(location=f"token-{spent_location}", daily=12, daily_reset_ms=int(reset_s * 1000))
        spent_events = [qualified_event(spent_org, n, hot=False) for n in range(spent_leads)]
        await publish_qualified(settings.kafka_bootstrap_servers, topics, spent_events)
    limited_before = (await sandbox.stats()).get(f"rate_limited:token-{location}", 0)
    cost_before = await _waiting_cost(workers)
    events = [qualified_event(org, n, hot=n % 3 == 0) for n in range(leads)]
    await publish_qualified(settings.kafka_bootstrap_servers, topics, events)
    log(
        f"drain: {leads} leads published; {len(workers)} workers draining at {GHL_BURST}/{GHL_INTERVAL_MS} ms"
        + (f"; {len(spent_events)} leads for a location with a spent daily budget" if spent else "")
    )

    async def drained() -> bool:
        contacts = await sandbox.contacts(location)
        hot = {c["email"] for c in contacts if c["opportunities"]}
        noted = {c["email"] for c in contacts if c["notes"]}
        return len(noted) >= leads and len(hot) >= (leads + 2) // 3

    await wait_for(drained, 60 + leads * 5 * GHL_INTERVAL_MS / 1000 / GHL_BURST * 1.5, "the drain")
    await asyncio.sleep(1)  # a duplicate write still under way would show now
    by_location = (await _get(sandbox, "/_sandbox/requests"))["by_location"]
    times = sorted(by_location[f"token-{location}"])
    limited = (await sandbox.stats()).get(f"rate_limited:token-{location}", 0) - limited_before
    result = _rates(times, leads, len(workers), limited) | _books(await sandbox.contacts(location), events)
    cost_after = await _waiting_cost(workers)
    cost = {name: cost_after[name] - cost_before[name] for name in cost_after}
    result |= {
        "workers_cpu_ms_per_lead": round(cost["cpu_seconds"] * 1000 / leads, 2),
        "parked": int(cost["parked"]),
        "parked_until_turn": int(cost["parked_until_turn"]),
    }
    if spent is not None:
        result["spent_location"] = await _spent_outcome(sandbox, spent_location, spent_events, spent[2])
    return result


async def _waiting_cost(workers: list[ServiceProcess]) -> dict[str, float]:
    """What the workers spent so far: CPU seconds, and events parked on a spent budget or parked
    again because they came back before their turn."""
    total = {"cpu_seconds": 0.0, "parked": 0.0, "parked_until_turn": 0.0}
    for worker in workers:
        assert worker.process is not None
        total["cpu_seconds"] += cpu_seconds(worker.process.pid)
        total["parked"] += await parked_events(worker.base_url)
        total["parked_until_turn"] += await parked_events(worker.base_url, "parked_until_turn")
    return total


def _books(contacts: list[dict[str, Any]], events: list[Any]) -> dict[str, int]:
    """Lost: a lead without its contact and note (or a hot one without its opportunity).
    Duplicated: a second contact, note or opportunity for one lead."""
    by_email: dict[str, list[dict[str, Any]]] = {}
    for contact in contacts:
        by_email.setdefault(contact["email"], []).append(contact)
    lost = duplicated = 0
    for event in events:
        found = by_email.get(event.payload.lead.email, [])
        notes = sum(len(c["notes"]) for c in found)
        opportunities = sum(len(c["opportunities"]) for c in found)
        hot = event.payload.qualification.temperature == Temperature.HOT
        lost += int(not found or not notes or (hot and not opportunities))
        duplicated += max(0, len(found) - 1) + max(0, notes - 1) + max(0, opportunities - 1)
    return {"lost": lost, "duplicated": duplicated}


async def _spent_outcome(
    sandbox: Sandbox, location: str, events: list[Any], reset_s: float
) -> dict[str, Any]:
    """Wait for the spent location's leads; when they synced, relative to its first reset."""

    async def synced() -> bool:
        contacts = await sandbox.contacts(location)
        return len(contacts) == len(events) and all(c["notes"] for c in contacts)

    await wait_for(synced, 4 * reset_s + 120, "the spent location's leads")
    times = sorted((await _get(sandbox, "/_sandbox/requests"))["by_location"][f"token-{location}"])
    stats = await sandbox.stats()
    contacts = await sandbox.contacts(location)
    # GHL's day starts at the location's first request: leads whose note (the last write) came
    # after that day's end synced after the reset.
    reset_at = times[0] + reset_s
    after_reset = sum(1 for c in contacts if c["notes"] and _epoch(c["notes"][-1]["dateAdded"]) >= reset_at)
    return {
        "leads": len(events),
        "requests": len(times),
        "daily_windows_used": int((times[-1] - times[0]) // reset_s) + 1,
        "last_write_after_first_request_s": round(times[-1] - times[0], 1),
        "rate_limited_429": stats.get(f"rate_limited:token-{location}", 0),
        "contacts": len(contacts),
        "synced_after_reset": after_reset,
        **_books(contacts, events),
    }


def _rates(times: list[float], leads: int, replicas: int, limited: int) -> dict[str, Any]:
    interval = GHL_INTERVAL_MS / 1000
    first, last = times[0], times[-1]
    # Request i + burst can go at the earliest one interval after request i: the mean of those
    # gaps against the interval is the sustained share of the limit, whatever the burst shape.
    gaps = [times[i + GHL_BURST] - times[i] for i in range(len(times) - GHL_BURST)]
    share = interval / statistics.mean(gaps) if gaps else float("nan")
    allowed_in_span = GHL_BURST * (int((last - first) / interval) + 1)
    return {
        "leads": leads,
        "replicas": replicas,
        "requests": len(times),
        "seconds": round(last - first, 2),
        "rate_limited_429": limited,
        "mean_gap_ms": round(statistics.mean(gaps) * 1000, 1) if gaps else None,
        "share_of_allowed": round(share, 4),
        "share_of_allowed_in_span": round(len(times) / allowed_in_span, 4),
        "max_in_any_window": _max_in_window(times, interval),
    }


def _max_in_window(times: list[float], interval: float) -> int:
    """The most requests that arrived within any `interval` seconds (must not exceed the burst)."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= interval:
            start += 1
        best = max(best, end - start + 1)
    return best


async def _get(sandbox: Sandbox, path: str) -> Any:
    async with httpx.AsyncClient(timeout=10) as client:
        return (await client.get(f"{sandbox.url}{path}")).json()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with (
        bench_environment(log_level="WARNING", pool_size=2) as env,
        Sandbox.running(env.work_dir / "ghl.log", burst=GHL_BURST, interval_ms=GHL_INTERVAL_MS) as sandbox,
    ):
        run_id, work, pool = env.run_id[:6], env.work_dir, env.pool
        org = f"bench-{run_id}"
        workers: list[ServiceProcess] = []
        try:
            settings = Settings.model_validate(
                env.settings.model_dump()
                | {
                    "ghl_base_url": sandbox.url,
                    "ghl_token": SecretStr(f"token-fast-{run_id}"),
                    "ghl_location_id": f"fast-{run_id}",
                    "ghl_organization": org,
                    "ghl_pipeline_id": "pipeline-bench",
                    "crm_credentials_key": SecretStr(generate_key()),
                    # Phase 3's spent location: GHL does not say when its day ends, so the budget
                    # probes it; every 5 s here instead of 5 min, to see its reset within the run.
                    "ghl_budget_daily_probe_ms": 5_000,
                }
            )
            await env.create_organization(org, "Bench Realty")
            for i in range(args.replicas):
                (work / f"w{i}").mkdir()
                workers.append(ServiceProcess.worker("crm_sync", settings, work / f"w{i}"))
            await asyncio.gather(*(w.start() for w in workers))
            await asyncio.sleep(6)  # consumer groups join in about 5 s on the embedded broker
            log("latency phase")
            latency = await latency_phase(sandbox, settings, org, args.latency_leads, args.spacing)
            log("drain phase")
            await env.create_organization(f"{org}-d", "Bench Realty (drain)")
            drain = await drain_phase(sandbox, settings, f"{org}-d", pool, args.leads, workers)
            log("two locations, one with a spent daily budget")
            await env.create_organization(f"{org}-b", "Bench Realty (busy)")
            await env.create_organization(f"{org}-s", "Bench Realty (spent)")
            spent = (f"{org}-s", args.spent_leads, args.spent_reset)
            both = await drain_phase(sandbox, settings, f"{org}-b", pool, args.busy_leads, workers, spent)
            both["share_vs_alone"] = round(both["share_of_allowed"] / drain["share_of_allowed"], 3)
        finally:
            for worker in workers:
                worker.stop()
        # Every call of every phase against GHL's spec: printed, and leaving ``Sandbox.running``
        # fails the run on any.
        problems = await sandbox.contract_problems()
        log(f"contract: {len(problems)} calls refused by GHL's spec or answered outside it")
        return {
            "latency_unthrottled": latency,
            "drain_ghl_limits": drain,
            "two_locations": both,
            "contract_problems": len(problems),
        }


def main(argv: list[str] | None = None) -> None:
    """Run both phases; print a table, or JSON with --json."""
    parser = argparse.ArgumentParser(prog="python -m bench.ghl_drain", description=__doc__.split("\n")[0])
    parser.add_argument("--leads", type=int, default=120, help="backlog of the drain phase")
    parser.add_argument("--replicas", type=int, default=2, help="crm_sync workers")
    parser.add_argument("--latency-leads", type=int, default=30)
    parser.add_argument("--spacing", type=float, default=0.2, help="seconds between latency-phase leads")
    parser.add_argument(
        "--busy-leads", type=int, default=500, help="backlog of the busy organisation (phase 3)"
    )
    parser.add_argument("--spent-leads", type=int, default=6, help="leads of the spent location (phase 3)")
    parser.add_argument("--spent-reset", type=float, default=40, help="its daily window, seconds")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    lat, drain = result["latency_unthrottled"], result["drain_ghl_limits"]
    created, noted = lat["contact_ms"], lat["note_ms"]
    print(
        f"lead.qualified -> contact created (unthrottled, {lat['leads']} leads): "
        f"p50 {created['p50']} ms, p95 {created['p95']} ms, max {created['max']} ms"
    )
    print(
        f"lead.qualified -> note written (last write):          "
        f"p50 {noted['p50']} ms, p95 {noted['p95']} ms, max {noted['max']} ms"
    )
    print(
        f"drain at {GHL_BURST} per {GHL_INTERVAL_MS // 1000} s: {drain['leads']} leads, "
        f"{drain['requests']} requests "
        f"in {drain['seconds']} s by {drain['replicas']} workers"
    )
    print(
        f"  sustained share of the allowed rate: {drain['share_of_allowed']:.1%} (request i+{GHL_BURST} "
        f"follows request i by {drain['mean_gap_ms']} ms on average, {GHL_INTERVAL_MS} ms at best); "
        f"requests / allowed in the span: {drain['share_of_allowed_in_span']:.1%}"
    )
    print(
        f"  429s caused by the limit: {drain['rate_limited_429']}; "
        f"most requests in any {GHL_INTERVAL_MS // 1000} s: {drain['max_in_any_window']}"
    )
    print(
        f"  cost of waiting: workers' CPU {drain['workers_cpu_ms_per_lead']} ms per lead; events parked "
        f"{drain['parked']} times on a spent budget, {drain['parked_until_turn']} more back before their turn"
    )
    both = result["two_locations"]
    spent = both["spent_location"]
    allowed = GHL_BURST / (GHL_INTERVAL_MS / 1000)
    print(
        f"two locations: busy {both['leads']} leads, {both['requests']} requests in {both['seconds']} s, "
        f"{both['share_of_allowed'] * allowed:.2f} requests/s of the {allowed:.0f}/s allowed "
        f"(ratio {both['share_of_allowed']:.3f}; {both['share_vs_alone']:.2f} x the drain phase), "
        f"self-caused 429s {both['rate_limited_429']}, lost {both['lost']}, duplicated {both['duplicated']}"
    )
    print(
        f"  spent location (12 requests per {args.spent_reset:.0f} s day): "
        f"{spent['contacts']}/{spent['leads']} leads synced, {spent['synced_after_reset']} of them after "
        f"its reset, over {spent['daily_windows_used']} daily windows, last write "
        f"{spent['last_write_after_first_request_s']} s after its first request, "
        f"429s {spent['rate_limited_429']} (its probes), "
        f"lost {spent['lost']}, duplicated {spent['duplicated']}"
    )
    print(f"GHL contract: {result['contract_problems']} calls refused by the spec or answered outside it")


if __name__ == "__main__":
    main()
