"""deploy/monitoring: the rules load and their unit tests pass in promtool; the dashboard and the
rules read only metrics the services export; every alert has a summary, a runbook and tests."""

from __future__ import annotations

import re
import subprocess

import yaml
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import REGISTRY, CollectorRegistry

import jorge_runtime.observability.metrics  # noqa: F401 - registers every jorge_* metric
from tests.support.monitoring import (
    DASHBOARD,
    REPO,
    RULE_TESTS,
    RULES,
    dashboard,
    queried_metric_names,
    queries,
    rules,
)
from tests.support.tools import require_tool

PANELS = [
    "Error Rate",
    "Response Time",
    "Throughput",
    "Cache Hit Rate",
    "Database Queries",
    "External Services",
    "Business Metrics",
    "Alerts",
    "Follow-ups",
]


def promtool() -> str:
    """promtool from PATH or the virtualenv (./jorge test puts it there); the test fails without it."""
    return require_tool("promtool")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_promtool_accepts_the_rules() -> None:
    result = _run("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = _run("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def _exported_families() -> set[str]:
    registry = CollectorRegistry()
    KafkaPrometheusMiddleware(registry=registry, app_name="check")
    names = set()
    for reg in (REGISTRY, registry):
        for family in reg.collect():
            names |= {family.name, f"{family.name}_total", f"{family.name}_bucket", f"{family.name}_sum",
                      f"{family.name}_count"}  # fmt: skip
    return names


def test_queries_read_only_exported_metrics() -> None:
    unknown = queried_metric_names() - _exported_families()
    assert not unknown, f"queried but exported by no service: {sorted(unknown)}"
    assert queried_metric_names(["rate(jorge_api_requests_total[5m]) / jorge:api_errors:rate5m"]) == {
        "jorge_api_requests_total"
    }


def test_every_alert_has_summary_runbook_and_both_tests() -> None:
    anchors = _anchors((REPO / "docs" / "TROUBLESHOOTING.md").read_text())
    tested = " ".join(RULE.read_text() for RULE in RULE_TESTS)
    alerts = [rule for rule in rules() if "alert" in rule]
    assert len(alerts) >= 20
    for rule in alerts:
        name, annotations = rule["alert"], rule["annotations"]
        assert annotations.get("summary"), name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert path == "docs/TROUBLESHOOTING.md" and anchor in anchors, (name, anchor)
        assert f"name: {name} fires" in tested and f"name: {name} stays quiet" in tested, name


def test_rule_tests_load_the_shipped_rules() -> None:
    for path in RULE_TESTS:
        assert yaml.safe_load(path.read_text())["rule_files"] == ["../prometheus/rules.yml"], path


def test_dashboard_has_its_panels() -> None:
    board = dashboard()
    assert board["title"] == "Jorge Bots Production"
    assert [panel["title"] for panel in board["panels"]] == PANELS
    assert all(panel.get("targets") for panel in board["panels"])
    assert DASHBOARD.parent.name == "dashboards"
    assert len(queries()) > len(rules())


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+\s+(.+)$", markdown, re.M)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
