"""The follow-up schedule on the real PostgreSQL: replicas claiming at once never share a step,
a lease held by a dead replica expires, a stop cancels what is pending (also a step already
claimed), a new inquiry after a plan ended starts a new one, and a step that fell due long
before the platform came back is skipped by policy."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from schemas.topics import TopicNames
from services.crm_sync.follow_ups.handlers import StepRunner
from services.crm_sync.follow_ups.repository import FollowUpRepository


async def plans(repo: FollowUpRepository, organization: str, count: int, due: datetime) -> list[str]:
    leads = [f"lead-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    for lead in leads:
        assert await repo.create_plan(organization, lead, "warm", uuid.uuid4(), [(3.0, due), (7.0, due)])
    return leads


async def test_concurrent_claimers_share_no_step_and_a_dead_claimers_lease_expires(
    pool: asyncpg.Pool, organization: str
) -> None:
    repo = FollowUpRepository(pool, f"test-{uuid.uuid4().hex[:8]}.")
    past = datetime.now(UTC) - timedelta(seconds=1)
    leads = await plans(repo, organization, 30, past)
    assert not await repo.create_plan(organization, leads[0], "hot", uuid.uuid4(), [(1.0, past)])

    claimed: list[uuid.UUID] = []

    async def replica() -> None:
        while batch := await repo.claim(7, 30):
            claimed.extend(s.id for s in batch)

    await asyncio.gather(*(replica() for _ in range(4)))
    assert len(claimed) == 60 and len(set(claimed)) == 60  # every step once, by one replica
    assert not await repo.claim(100, 30)

    # A replica that died holding a step: the step is claimable again once its lease is over.
    await pool.execute(
        "UPDATE follow_up_steps SET lease_expires_at = now() - interval '1 second' WHERE id = $1", claimed[0]
    )
    [again] = await repo.claim(100, 30)
    assert again.id == claimed[0] and again.attempts == 2


async def test_a_stop_cancels_pending_steps_and_a_paused_plan_is_not_claimed(
    pool: asyncpg.Pool, organization: str
) -> None:
    repo = FollowUpRepository(pool, f"test-{uuid.uuid4().hex[:8]}.")
    stopped, paused = await plans(repo, organization, 2, datetime.now(UTC) - timedelta(seconds=1))
    assert await repo.stop(organization, stopped, "replied")
    assert not await repo.stop(organization, stopped, "booked")  # the first reason stays
    await pool.execute(
        "UPDATE follow_up_plans SET status = 'paused' WHERE organization_id = $1 AND lead_id = $2",
        organization,
        paused,
    )
    assert not await repo.claim(100, 30)
    rows = await pool.fetch(
        "SELECT status FROM follow_up_steps WHERE organization_id = $1 AND lead_id = $2",
        organization,
        stopped,
    )
    assert {r["status"] for r in rows} == {"cancelled"}
    reason = await pool.fetchval(
        "SELECT stop_reason FROM follow_up_plans WHERE organization_id = $1 AND lead_id = $2",
        organization,
        stopped,
    )
    assert reason == "replied"


async def test_a_new_qualification_restarts_an_ended_plan_but_not_a_running_cancelled_or_opted_out_one(
    pool: asyncpg.Pool, organization: str
) -> None:
    repo = FollowUpRepository(pool, f"test-{uuid.uuid4().hex[:8]}.")
    due = datetime.now(UTC) + timedelta(days=1)
    running, completed, replied, opted_out, cancelled = await plans(repo, organization, 5, due)
    steps = await pool.fetch(
        """SELECT step_number, offset_days, due_at, status, next_attempt_at FROM follow_up_steps
            WHERE organization_id = $1 AND lead_id = $2 ORDER BY step_number""",
        organization,
        running,
    )
    assert [tuple(r) for r in steps] == [(1, 3.0, due, "pending", due), (2, 7.0, due, "pending", due)]
    ended = {completed: "completed", replied: "stopped", opted_out: "stopped", cancelled: "cancelled"}
    for lead, status in ended.items():
        await pool.execute(
            """UPDATE follow_up_plans SET status = $3,
                      stop_reason = CASE WHEN $3 = 'stopped' THEN $4 END
                WHERE organization_id = $1 AND lead_id = $2""",
            organization, lead, status, "opted_out" if lead == opted_out else "replied",
        )  # fmt: skip
    started_by = await pool.fetch(
        "SELECT lead_id, source_event_id FROM follow_up_plans WHERE organization_id = $1", organization
    )
    source = {r["lead_id"]: r["source_event_id"] for r in started_by}

    async def qualified_again(lead: str, event_id: uuid.UUID | None = None) -> str | None:
        return await repo.create_plan(organization, lead, "hot", event_id or uuid.uuid4(), [(1.0, due)])

    assert await qualified_again(completed, source[completed]) is None  # the same event redelivered
    assert [await qualified_again(lead) for lead in (running, completed, replied, opted_out, cancelled)] == [
        None, "restarted", "restarted", None, None,
    ]  # fmt: skip
    rows = await pool.fetch(
        """SELECT p.lead_id, p.status, p.stop_reason, p.temperature, count(s.id) AS steps
             FROM follow_up_plans p JOIN follow_up_steps s USING (organization_id, lead_id)
            WHERE p.organization_id = $1 GROUP BY 1, 2, 3, 4""",
        organization,
    )
    now = {r["lead_id"]: (r["status"], r["stop_reason"], r["temperature"], r["steps"]) for r in rows}
    assert now[completed] == now[replied] == ("active", None, "hot", 1)  # the old steps went
    assert now[running] == ("active", None, "warm", 2)
    assert now[opted_out] == ("stopped", "opted_out", "warm", 2)
    assert now[cancelled] == ("cancelled", None, "warm", 2)


class Untouchable:
    """Stands for every adapter a skipped step must not use."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a step too late to run used {name}")


def runner_without_adapters(repo: FollowUpRepository) -> StepRunner:
    """A runner whose GHL, contact, webhook and Kafka adapters fail the test if used."""
    return StepRunner(
        repository=repo,
        contacts=Untouchable(),  # type: ignore[arg-type]
        resolver=Untouchable,  # type: ignore[arg-type]
        client=Untouchable(),  # type: ignore[arg-type]
        deliveries=Untouchable(),  # type: ignore[arg-type]
        publish=Untouchable(),  # type: ignore[arg-type]
        topics=TopicNames(),
        default_days=(3.0, 7.0, 30.0),
        day_seconds=86_400,
        retry_delays=(1.0,),
        max_attempts=3,
        max_payload_bytes=20_000,
    )


async def test_a_stop_that_lands_after_the_claim_sends_nothing(pool: asyncpg.Pool, organization: str) -> None:
    repo = FollowUpRepository(pool, f"test-{uuid.uuid4().hex[:8]}.")
    [lead] = await plans(repo, organization, 1, datetime.now(UTC) - timedelta(seconds=1))
    steps = await repo.claim(100, 30)
    assert await repo.stop(organization, lead, "not_interested")  # the lead said no meanwhile
    runner = runner_without_adapters(repo)
    assert [await runner.run(s) for s in steps] == ["stopped", "stopped"]


async def test_a_step_that_fell_due_long_before_the_platform_came_back_is_skipped(
    pool: asyncpg.Pool, organization: str
) -> None:
    repo = FollowUpRepository(pool, f"test-{uuid.uuid4().hex[:8]}.")
    [lead] = await plans(repo, organization, 1, datetime.now(UTC) - timedelta(days=2))
    runner = runner_without_adapters(repo)
    steps = await repo.claim(100, 30)
    assert [await runner.run(s) for s in steps] == ["skipped", "skipped"]
    rows = await pool.fetch(
        "SELECT status, skip_reason FROM follow_up_steps WHERE organization_id = $1 AND lead_id = $2",
        organization,
        lead,
    )
    assert {(r["status"], r["skip_reason"]) for r in rows} == {("skipped", "too_late")}
    status = await pool.fetchval(
        "SELECT status FROM follow_up_plans WHERE organization_id = $1 AND lead_id = $2", organization, lead
    )
    assert status == "completed"
