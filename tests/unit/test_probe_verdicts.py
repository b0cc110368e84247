"""Readiness and liveness verdicts of a worker from its subscribers' state (no broker needed)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from jorge_runtime.observability.health import check_assignments, consumer_assignment, dead_consume_loops
from services.gateway.admin_port import allowed_on


def _consumer(assignment: set[str] | None) -> Any:
    """An object shaped like aiokafka's consumer: its subscription state and its assignment."""
    subscription = None if assignment is None else SimpleNamespace(assignment=SimpleNamespace(tps=assignment))
    return SimpleNamespace(_subscription=SimpleNamespace(subscription=subscription))


@dataclass
class FakeSubscriber:
    topic_names_for_subscribe: list[str]
    consumer: Any = None
    running: bool = True
    tasks: list[Any] = field(default_factory=list)


@dataclass
class FakeBroker:
    subscribers: list[FakeSubscriber]


def test_assignment_is_none_until_the_group_assigns_and_a_set_after() -> None:
    assert consumer_assignment(FakeSubscriber(["a"])) is None  # not started: no consumer yet
    assert consumer_assignment(FakeSubscriber(["a"], _consumer(None))) is None  # joining
    assert (
        consumer_assignment(FakeSubscriber(["a"], _consumer(set()))) == set()
    )  # joined, more members than partitions
    assert consumer_assignment(FakeSubscriber(["a"], _consumer({"a-0", "a-1"}))) == {"a-0", "a-1"}


def test_ready_only_when_every_consumer_of_every_broker_is_assigned() -> None:
    joined = FakeSubscriber(["lead.qualified"], _consumer({"p0", "p1"}))
    idle_member = FakeSubscriber(["buyer.matched"], _consumer(set()))
    joining = FakeSubscriber(["seller.analyzed"], _consumer(None))
    waiting = check_assignments("crm_sync", [FakeBroker([joined]), FakeBroker([idle_member, joining])])  # type: ignore[list-item]
    assert (waiting.status, waiting.waiting_for) == ("not_ready", ["seller.analyzed"])
    assert (waiting.consumers, waiting.consumers_assigned, waiting.partitions_assigned) == (3, 2, 2)
    ready = check_assignments("crm_sync", [FakeBroker([joined, idle_member])])  # type: ignore[list-item]
    assert ready.status == "ready" and ready.waiting_for == []
    assert check_assignments("x", [FakeBroker([])]).status == "not_ready"  # type: ignore[list-item]


async def test_liveness_fails_only_for_a_running_subscriber_whose_loop_ended() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    alive = asyncio.ensure_future(forever())
    ended = asyncio.ensure_future(asyncio.sleep(0))
    await ended
    try:
        healthy = FakeSubscriber(["a"], tasks=[alive])
        stopped = FakeSubscriber(["b"], running=False, tasks=[ended])  # stopped on purpose: not wedged
        wedged = FakeSubscriber(["c"], tasks=[ended])
        assert dead_consume_loops([FakeBroker([healthy, stopped])]) == []  # type: ignore[list-item]
        assert dead_consume_loops([FakeBroker([healthy, wedged])]) == ["c"]  # type: ignore[list-item]
    finally:
        alive.cancel()


def test_admin_paths_only_on_the_admin_port_and_probes_on_both() -> None:
    for path in ("/metrics", "/health/detailed"):
        assert allowed_on(path, admin=True) and not allowed_on(path, admin=False)
    for path in ("/v1/leads/qualify", "/docs", "/openapi.json"):
        assert allowed_on(path, admin=False) and not allowed_on(path, admin=True)
    for path in ("/health", "/health/ready"):
        assert allowed_on(path, admin=True) and allowed_on(path, admin=False)
