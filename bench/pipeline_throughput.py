"""The whole pipeline against the gateway: does everything behind it keep up, and do webhooks
stay fast while GoHighLevel is slow?

It starts what `jorge up` starts, as `jorge up` runs it (the gateway at a lower CPU priority,
``--gateway-niceness``), as separate processes on loopback: the gateway, the qualifier
(rules), matcher, seller analyzer and crm_sync (its GHL sync and its webhook engine, one process
each; ``--combined`` runs both halves in one process, as before they were split), plus the GHL
sandbox with GHL's real limit (100 calls per 10 s per location). A webhook receiver in this
process subscribes to lead.qualified and verifies every signature (Standard Webhooks).

1. First lead: once every worker is ready (as `jorge up` waits), one lead; the time from its
   POST to its verified webhook.
2. Load: ``--leads`` leads from ``--clients`` concurrent clients, as fast as the gateway accepts.
   accept rate = leads / (last 201 - first POST); end-to-end rate = leads with a verified
   webhook / (last webhook - first POST); their ratio is the share of the gateway's pace the
   pipeline keeps (1.0: no backlog). The GHL contacts cannot keep up by design (the budget allows
   10 calls/s, a lead takes about three): they are the backlog of phase 3.
3. Gentle: ``--gentle-leads`` leads at ``--rate`` per second while thousands of GHL calls still
   wait on the budget; lead-to-webhook percentiles. With the halves split, this backlog is lag on
   the GHL half's consumer groups only.

Printed: the rates and ratio, POST-to-201 percentiles under load (what integrators wait),
lead-to-webhook p50/p95/p99 per phase, GHL calls per second
against the budget and the backlog, the qualifier's mean handling time per lead, and per process
its CPU (ms per lead of the load phase), database round trips per lead (statements; a
transaction's BEGIN and COMMIT not counted) and RSS (peak and at the end), with PostgreSQL
(server and backends) and this benchmark's own clients and receiver in the same table: the
machine is shared by all of them; then the workers' and PostgreSQL's CPU per lead over the
gateway's (steadier between runs than either) and PostgreSQL's backend CPU by the service it
serves. Progress on stderr.

Services: the embedded stack in a temporary directory unless KAFKA_BOOTSTRAP_SERVERS,
DATABASE_URL or REDIS_URL is set. Run from the repository root:
    .venv/bin/python -m bench.pipeline_throughput [--leads 600] [--clients 16] [--gentle-leads 150]
        [--rate 10] [--combined] [--gateway-niceness 10] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pydantic import SecretStr
from standardwebhooks import Webhook

from bench.environment import BenchEnvironment, bench_environment, log, run_main
from jorge_cli.service_process import GATEWAY_NICENESS, ServiceProcess
from jorge_runtime.settings import Settings
from tests.support.ghl import Sandbox
from tests.support.webhook_receiver import Answer, Received, Receiver

GHL_BURST, GHL_INTERVAL_MS = 100, 10_000
CALLS_PER_LEAD = 3
WORKERS = ("qualifier", "matcher", "seller_analyzer", "crm_sync")
QUALIFIER_DURATION = "faststream_received_processed_messages_duration_seconds"
DB_QUERY_DURATION = "jorge_db_query_duration_seconds"
#: The processes behind the gateway whose CPU per lead the pipeline's changes aim at.
PIPELINE = (
    "qualifier", "matcher", "seller_analyzer", "crm_sync", "crm_sync.ghl", "crm_sync.webhooks", "postgres",
)  # fmt: skip
_PHONES = itertools.count()
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p95/p99 (ms, rounded) of ``values``; zeros when there are none."""
    ordered = sorted(values)
    if not ordered:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    pick = lambda share: ordered[min(len(ordered) - 1, int(share * len(ordered)))]  # noqa: E731
    return {"p50": round(pick(0.5), 1), "p95": round(pick(0.95), 1), "p99": round(pick(0.99), 1)}


def _stat(pid: int) -> tuple[str, list[str]]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, its exited children's included, and that of its
    live descendants (PostgreSQL's backends); Linux /proc."""
    try:
        _name, fields = _stat(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    own = sum(int(fields[i]) for i in (11, 12, 13, 14)) / _TICKS
    return own + sum(cpu_seconds(child) for child in children(pid))


def children(pid: int) -> list[int]:
    """Live child processes of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1][1]) == pid:
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
    return found


def stack_processes(exclude: set[int]) -> dict[str, int]:
    """This benchmark's other children by name: the embedded broker, PostgreSQL, Redis and the
    GHL sandbox (their CPU counts too: the machine is shared by the whole pipeline)."""
    found = {}
    for child in children(os.getpid()):
        if child in exclude:
            continue
        name, _ = _stat(child)
        argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        found["ghl_sandbox" if b"sandboxes.ghl" in argv else name] = child
    return found


def own_cpu_seconds(pid: int) -> float:
    """User + system CPU of the process alone (this benchmark: its clients and receiver)."""
    _name, fields = _stat(pid)
    return sum(int(fields[i]) for i in (11, 12)) / _TICKS


def postgres_server(database_url: str) -> int | None:
    """The PostgreSQL server (postmaster) listening on the database URL's port, if it runs here:
    the embedded one is started detached, so it is no child of this benchmark."""
    url = urlsplit(database_url)
    port, socket_dir = url.port or 5432, parse_qs(url.query).get("host", [""])[0]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, fields = _stat(int(entry.name))
            if name != "postgres" or _stat(int(fields[1]))[0] == "postgres":
                continue  # not PostgreSQL, or one of its backends
            argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
            data_dir = Path(argv[argv.index(b"-D") + 1].decode())
            # postmaster.pid: line 4 the port, line 5 the socket directory (the embedded one's URL)
            lines = (data_dir / "postmaster.pid").read_text().splitlines()
            if lines[3] == str(port) and (not socket_dir.startswith("/") or lines[4] == socket_dir):
                return int(entry.name)
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError, ValueError):
            continue
    return None


#: PostgreSQL backends by pid: (the service holding it, its CPU seconds so far).
Backends = dict[int, tuple[str, float]]


async def backend_cpu(pool: asyncpg.Pool) -> Backends:
    """CPU so far of each PostgreSQL backend a service holds, by pid: (service, seconds). The
    services name their connections (application_name jorge-<service>); a server on another
    machine has no /proc here and shows none."""
    rows = await pool.fetch(
        "SELECT pid, application_name FROM pg_stat_activity WHERE application_name LIKE 'jorge-%'"
    )
    found = {}
    for row in rows:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
            found[row["pid"]] = (row["application_name"].removeprefix("jorge-"), own_cpu_seconds(row["pid"]))
    return found


def backend_cpu_by_service(before: Backends, after: Backends) -> dict[str, float]:
    """PostgreSQL CPU (seconds) spent between two ``backend_cpu`` readings, per service."""
    spent: dict[str, float] = {}
    for pid, (service, seconds) in after.items():
        spent[service] = spent.get(service, 0.0) + seconds - before.get(pid, (service, 0.0))[1]
    return spent


def rss_mib(pid: int) -> float:
    """Resident memory of a process now, MiB (0 once it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE / 2**20
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


@dataclass
class ProcessWatch:
    """CPU at phase boundaries and peak RSS of every process, sampled in the background."""

    pids: dict[str, int]
    peak_rss: dict[str, float] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def cpu(self) -> dict[str, float]:
        return {
            name: own_cpu_seconds(pid) if pid == os.getpid() else cpu_seconds(pid)
            for name, pid in self.pids.items()
        }

    def rss(self) -> dict[str, float]:
        return {name: rss_mib(pid) for name, pid in self.pids.items()}

    async def _sample(self) -> None:
        while True:
            for name, value in self.rss().items():
                self.peak_rss[name] = max(self.peak_rss.get(name, 0.0), value)
            await asyncio.sleep(0.25)

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


class Hooks:
    """Verified lead.qualified webhooks by lead id: when each first arrived."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.arrived: dict[str, float] = {}
        self.bad_signatures = 0

    def answer(self, _n: int, request: Received) -> Answer:
        assert self.secret is not None
        try:
            body = Webhook(self.secret).verify(request.body, request.headers)
        except Exception:  # any refusal (bad signature, stale timestamp) counts
            self.bad_signatures += 1
            return Answer(401, body=b"")
        self.arrived.setdefault(body["data"]["lead_id"], request.at)
        return Answer(204, body=b"")

    async def wait_for(self, leads: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(lead not in self.arrived for lead in leads) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def lead_body(lead_id: str) -> dict[str, str]:
    # A phone of its own per lead: GHL finds contacts by phone, so one phone would be one contact.
    return {
        "lead_id": lead_id,
        "name": "Maria Lopez",
        "phone": f"+1909555{next(_PHONES) % 10_000:04d}",
        "message": "Pre-approved for $750k, looking for a 3 bed in Victoria, moving in 2 months",
    }


async def post_lead(http: httpx.AsyncClient, lead_id: str) -> tuple[float, float]:
    """POST one lead; (started, accepted) monotonic times."""
    started = time.monotonic()
    response = await http.post("/v1/leads/qualify", json=lead_body(lead_id))
    if response.status_code != 201:
        raise RuntimeError(f"{lead_id}: {response.status_code} {response.text[:200]}")
    return started, time.monotonic()


async def load_phase(
    base_url: str, api_key: str, hooks: Hooks, leads: int, clients: int
) -> tuple[dict[str, Any], float, float]:
    """``leads`` leads from ``clients`` clients as fast as accepted; (figures, start, accept end)."""
    queue = [f"load-{n:05d}" for n in range(leads)]
    posted: dict[str, tuple[float, float]] = {}

    async def client() -> None:
        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60
        ) as http:
            while queue:
                lead = queue.pop()
                posted[lead] = await post_lead(http, lead)

    await asyncio.gather(*(client() for _ in range(clients)))
    first = min(s for s, _ in posted.values())
    accepted_until = max(a for _, a in posted.values())
    await hooks.wait_for(list(posted), timeout=max(120.0, leads / 2))
    delivered = [lead for lead in posted if lead in hooks.arrived]
    last_hook = max((hooks.arrived[lead] for lead in delivered), default=first)
    accept_rate = leads / (accepted_until - first)
    end_to_end = len(delivered) / (last_hook - first) if delivered else 0.0
    figures = {
        "leads": leads,
        "clients": clients,
        "accept_rate": round(accept_rate, 1),
        "end_to_end_rate": round(end_to_end, 1),
        "ratio": round(end_to_end / accept_rate, 2),
        "delivered": len(delivered),
        "lead_to_webhook_ms": percentiles([(hooks.arrived[k] - posted[k][0]) * 1000 for k in delivered]),
        # What an integrator waits for under this load: POST to 201.
        "accept_ms": percentiles([(accepted - started) * 1000 for started, accepted in posted.values()]),
    }
    return figures, first, accepted_until


async def gentle_phase(base_url: str, api_key: str, hooks: Hooks, leads: int, rate: float) -> dict[str, Any]:
    """``leads`` leads at ``rate`` per second; their lead-to-webhook times."""
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60
    ) as http:
        tasks = {}
        start = time.monotonic()
        for n in range(leads):
            lead = f"gentle-{n:05d}"
            tasks[lead] = asyncio.create_task(post_lead(http, lead))
            await asyncio.sleep(max(0.0, start + (n + 1) / rate - time.monotonic()))
        posted = {lead: (await task)[0] for lead, task in tasks.items()}
    await hooks.wait_for(list(posted), timeout=120)
    delivered = [lead for lead in posted if lead in hooks.arrived]
    return {
        "leads": leads,
        "rate_per_s": rate,
        "delivered": len(delivered),
        "lead_to_webhook_ms": percentiles([(hooks.arrived[k] - posted[k]) * 1000 for k in delivered]),
    }


async def ghl_figures(sandbox: Sandbox, location: str, since_epoch: float, leads: int) -> dict[str, Any]:
    """GHL calls let through since ``since_epoch`` per second (against the budget), and the backlog."""
    times = sorted(t for t in (await sandbox.accepted()).get(f"token-{location}", []) if t >= since_epoch)
    contacts = await sandbox.contacts(location)
    noted = sum(1 for c in contacts if c.get("notes"))
    elapsed = time.time() - since_epoch
    return {
        "calls": len(times),
        "calls_per_s": round(len(times) / elapsed, 2),
        "budget_per_s": GHL_BURST / (GHL_INTERVAL_MS / 1000),
        "contacts": len(contacts),
        "leads_noted": noted,
        "leads_waiting": leads - noted,
        # A lead costs a contact upsert, a note and, when hot, an opportunity (bench.ghl_drain).
        "calls_waiting_estimate": max(0, leads * CALLS_PER_LEAD - len(times)),
    }


async def scrape(base_url: str) -> list[Sample]:
    """Every sample a process's /metrics shows, parsed by prometheus_client."""
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{base_url}/metrics")).text
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


async def qualifier_ms_per_lead(base_url: str) -> float | None:
    """The qualifier's mean handling time per lead.qualification_requested message, from /metrics."""
    total = count = 0.0
    for sample in await scrape(base_url):
        if not any("lead.qualification_requested" in value for value in sample.labels.values()):
            continue
        if sample.name == QUALIFIER_DURATION + "_sum":
            total += sample.value
        elif sample.name == QUALIFIER_DURATION + "_count":
            count += sample.value
    return round(total / count * 1000, 1) if count else None


async def database_units(processes: dict[str, ServiceProcess]) -> dict[str, float]:
    """Database units of work (a statement, or a transaction as a whole) each service has run so
    far, from its jorge_db_query_duration_seconds histogram: round trips that cost both sides."""
    units = {}
    for name, process in processes.items():
        samples = await scrape(process.base_url)
        units[name] = sum(s.value for s in samples if s.name == DB_QUERY_DURATION + "_count")
    return units


async def parked_events(base_url: str, outcome: str = "parked") -> int:
    """How many times crm_sync's GHL side parked an event on the delay topics: on a spent budget
    (``parked``), or again because it came back before its turn (``parked_until_turn``: no
    database, Redis or GHL work)."""
    return int(
        sum(
            sample.value
            for sample in await scrape(base_url)
            if sample.name == "jorge_messages_processed_total" and sample.labels.get("outcome") == outcome
        )
    )


def pipeline_processes(
    settings: Settings, work: Path, combined: bool, gateway_niceness: int = GATEWAY_NICENESS
) -> dict[str, ServiceProcess]:
    """The gateway and every worker as `jorge up` runs them, by process name."""
    processes = {"gateway": ServiceProcess.gateway(settings, work, niceness=gateway_niceness)}
    for name in WORKERS:
        process = ServiceProcess.worker(name, settings, work)
        if name != "crm_sync":
            processes[name] = process
        elif combined:
            process.companions = []
            process.env["CRM_SYNC_ROLE"] = "all"
            processes["crm_sync"] = process
        else:
            for half in (process, *process.companions):
                processes[f"crm_sync.{half.env['CRM_SYNC_ROLE']}"] = half
            process.companions = []
    return processes


async def wait_ready(processes: dict[str, ServiceProcess]) -> None:
    """Every worker's consumers hold their partitions (what `jorge up` waits for before "up")."""
    deadline = time.monotonic() + 120
    async with httpx.AsyncClient(timeout=2) as client:
        for name, process in processes.items():
            if name == "gateway":
                continue
            while (await client.get(f"{process.base_url}/health/ready")).status_code != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} never became ready")
                await asyncio.sleep(0.1)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    baseline: dict[str, Any] = {"kafka_consumer_concurrency": 1} if args.baseline else {}
    async with (
        bench_environment(
            log_level="WARNING",
            webhook_allowed_subnets="127.0.0.0/8",
            database_pool_size=10,
            **baseline,
        ) as env,
        Sandbox.running(env.work_dir / "ghl.log", burst=GHL_BURST, interval_ms=GHL_INTERVAL_MS) as sandbox,
    ):
        await sandbox.limits(burst=GHL_BURST, interval_ms=GHL_INTERVAL_MS, daily=10_000_000)
        return await measure(args, env, sandbox)


async def measure(args: argparse.Namespace, env: BenchEnvironment, sandbox: Sandbox) -> dict[str, Any]:
    org = f"bench-{env.run_id}"
    api_key = await env.issue_api_key(org)
    location = f"loc-{env.run_id}"
    settings = env.settings.model_copy(
        update={
            "ghl_base_url": sandbox.url,
            "ghl_token": SecretStr(f"token-{location}"),
            "ghl_location_id": location,
            "ghl_organization": org,
            "ghl_pipeline_id": "pipeline-bench",
        }
    )
    processes = pipeline_processes(settings, env.work_dir, args.combined, args.gateway_niceness)
    hooks = Hooks()
    try:
        log(f"starting {', '.join(processes)}")
        await asyncio.gather(*(p.start(timeout=240) for p in processes.values()))
        await wait_ready(processes)
        pids = {name: p.process.pid for name, p in processes.items() if p.process}
        others = stack_processes(set(pids.values()))
        if (postgres := postgres_server(env.database_url)) is not None:
            others["postgres"] = postgres  # its backends count with it
        watch = ProcessWatch(pids | others | {"bench (clients, receiver)": os.getpid()})
        watch.start()
        async with Receiver(hooks.answer) as receiver:
            gateway = processes["gateway"].base_url
            async with httpx.AsyncClient(
                base_url=gateway, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
            ) as http:
                response = await http.post(
                    "/v1/webhooks/register", json={"url": receiver.url(), "events": ["lead.qualified"]}
                )
                assert response.status_code == 201, response.text
                hooks.secret = response.json()["secret"]
                started, _ = await post_lead(http, "first-lead")
            await hooks.wait_for(["first-lead"], timeout=60)
            first_ms = round((hooks.arrived["first-lead"] - started) * 1000, 1)
            log(f"first lead: {first_ms} ms; load: {args.leads} leads from {args.clients} clients")
            ghl_since = time.time()
            cpu_before, units_before = watch.cpu(), await database_units(processes)
            backends_before = await backend_cpu(env.pool)
            load, load_start, _ = await load_phase(gateway, api_key, hooks, args.leads, args.clients)
            load_seconds = time.monotonic() - load_start
            cpu_load = {k: v - cpu_before[k] for k, v in watch.cpu().items()}
            units_load = {k: v - units_before[k] for k, v in (await database_units(processes)).items()}
            postgres_load = backend_cpu_by_service(backends_before, await backend_cpu(env.pool))
            ghl_after_load = await ghl_figures(sandbox, location, ghl_since, args.leads + 1)
            log(f"load: {load}; GHL: {ghl_after_load}")
            log(f"gentle: {args.gentle_leads} leads at {args.rate:g}/s")
            gentle = await gentle_phase(gateway, api_key, hooks, args.gentle_leads, args.rate)
            leads_so_far = args.leads + 1 + args.gentle_leads
            gentle["ghl_backlog_after"] = await ghl_figures(sandbox, location, ghl_since, leads_so_far)
            log(f"gentle: {gentle}")
        qualifier_ms = await qualifier_ms_per_lead(processes["qualifier"].base_url)
        ghl_side = processes["crm_sync" if args.combined else "crm_sync.ghl"]
        parked = await parked_events(ghl_side.base_url)
        parked_until_turn = await parked_events(ghl_side.base_url, "parked_until_turn")
        rss_end = watch.rss()
        watch.stop()
    finally:
        for process in processes.values():
            process.stop()
    return {
        "benchmark": "pipeline_throughput",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "crm_sync": "one process (both halves)" if args.combined else "two processes (ghl, webhooks)",
        "consumers_per_subscriber": 1 if args.baseline else env.settings.kafka_consumer_concurrency,
        "gateway_niceness": args.gateway_niceness,
        "cpus": os.cpu_count(),
        "first_lead_to_webhook_ms": first_ms,
        "load": load,
        "ghl_during_load": ghl_after_load,
        "gentle": gentle,
        "bad_signatures": hooks.bad_signatures,
        "qualifier_ms_per_lead": qualifier_ms,
        "ghl_parked_events": parked,
        "ghl_parked_until_turn": parked_until_turn,
        "postgres_cpu_ms_per_lead_by_service": {
            name: round(seconds * 1000 / args.leads, 2) for name, seconds in sorted(postgres_load.items())
        },
        "processes": {
            name: {
                "cpu_ms_per_lead": round(cpu_load[name] * 1000 / args.leads, 2),
                "cpu_share_of_a_core": round(cpu_load[name] / load_seconds, 2),
                "db_units_per_lead": round(units_load[name] / args.leads, 2) if name in units_load else None,
                "rss_peak_mib": round(watch.peak_rss.get(name, 0.0), 1),
                "rss_end_mib": round(rss_end[name], 1),
            }
            for name in watch.pids
        },
    }


def print_report(report: dict[str, Any]) -> None:
    load, gentle, ghl = report["load"], report["gentle"], report["ghl_during_load"]
    print(f"crm_sync: {report['crm_sync']}; hot-path consumers per subscriber: "
          f"{report['consumers_per_subscriber']}; gateway niceness +{report['gateway_niceness']}; "
          f"{report['cpus']} CPUs")  # fmt: skip
    print(f"first lead after ready -> webhook: {report['first_lead_to_webhook_ms']} ms")
    print(f"load: {load['leads']} leads, {load['clients']} clients")
    print(f"  accept rate        {load['accept_rate']:>8} leads/s")
    a = load["accept_ms"]
    print(f"  POST -> 201        p50 {a['p50']} ms  p95 {a['p95']} ms  p99 {a['p99']} ms")
    print(f"  end-to-end rate    {load['end_to_end_rate']:>8} leads/s (verified webhooks)")
    print(f"  end-to-end/accept  {load['ratio']:>8}")
    p = load["lead_to_webhook_ms"]
    print(f"  lead -> webhook    p50 {p['p50']} ms  p95 {p['p95']} ms  p99 {p['p99']} ms")
    print(f"  GHL calls/s        {ghl['calls_per_s']} (budget {ghl['budget_per_s']}); "
          f"{ghl['leads_waiting']} leads (~{ghl['calls_waiting_estimate']} calls) waiting")  # fmt: skip
    p, backlog = gentle["lead_to_webhook_ms"], gentle["ghl_backlog_after"]
    print(f"gentle: {gentle['leads']} leads at {gentle['rate_per_s']}/s, "
          f"~{backlog['calls_waiting_estimate']} GHL calls waiting on the budget")  # fmt: skip
    print(f"  lead -> webhook    p50 {p['p50']} ms  p95 {p['p95']} ms  p99 {p['p99']} ms")
    print(f"qualifier: {report['qualifier_ms_per_lead']} ms per lead (handler mean)")
    print(f"GHL side: events parked on the delay topics {report['ghl_parked_events']} times (budget spent), "
          f"{report['ghl_parked_until_turn']} more back before their turn")  # fmt: skip
    print(f"bad signatures: {report['bad_signatures']}")
    print(f"{'process':<26} {'cpu ms/lead':>12} {'cores':>6} {'db/lead':>8} {'rss peak MiB':>13} "
          f"{'rss end MiB':>12}")  # fmt: skip
    for name, figures in report["processes"].items():
        units = figures["db_units_per_lead"]
        print(f"{name:<26} {figures['cpu_ms_per_lead']:>12} {figures['cpu_share_of_a_core']:>6} "
              f"{'' if units is None else units:>8} {figures['rss_peak_mib']:>13} "
              f"{figures['rss_end_mib']:>12}")  # fmt: skip
    cpu = {name: figures["cpu_ms_per_lead"] for name, figures in report["processes"].items()}
    behind = sum(ms for name, ms in cpu.items() if name in PIPELINE)
    print(f"workers and PostgreSQL: {round(behind, 2)} ms of CPU per lead, "
          f"{round(behind / cpu['gateway'], 2)} per ms of the gateway's (steadier than either when "
          "the machine's speed drifts)")  # fmt: skip
    by_service = report["postgres_cpu_ms_per_lead_by_service"]
    if by_service:
        print("postgres backends, cpu ms/lead by service: "
              + ", ".join(f"{name} {ms}" for name, ms in by_service.items()))  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pipeline_throughput", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--leads", type=int, default=600)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--gentle-leads", type=int, default=150)
    parser.add_argument("--rate", type=float, default=10.0, help="leads per second in the gentle phase")
    parser.add_argument("--combined", action="store_true", help="crm_sync's halves in one process")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="as before this benchmark's changes: --combined, one consumer per subscriber, the "
        "gateway at the workers' priority",
    )
    parser.add_argument(
        "--gateway-niceness",
        type=int,
        default=GATEWAY_NICENESS,
        help=f"added to the gateway's CPU niceness, as `jorge up` does ({GATEWAY_NICENESS}); 0: the "
        "gateway competes for the cores at the workers' priority",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    args.combined = args.combined or args.baseline
    args.gateway_niceness = 0 if args.baseline else args.gateway_niceness
    report = asyncio.run(run(args))
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)


if __name__ == "__main__":
    run_main(main)
