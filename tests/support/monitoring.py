"""What deploy/monitoring queries: metric names in the rules and the Grafana dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
RULES = MONITORING / "prometheus" / "rules.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "jorge-bots-production.json"
RULE_TESTS = sorted((MONITORING / "tests").glob("*.yml"))
# Series Prometheus itself provides to rules and dashboards.
PROMETHEUS_BUILTINS = frozenset({"ALERTS", "ALERTS_FOR_STATE"})
_METRIC = re.compile(r"(?<![\w:])((?:jorge|faststream)_[a-z0-9_]+|ALERTS_FOR_STATE|ALERTS)(?![\w:])")


def rules() -> list[dict[str, Any]]:
    """Every recording and alerting rule of rules.yml."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    """The dashboard JSON."""
    return json.loads(DASHBOARD.read_text())


def queries() -> list[str]:
    """Every PromQL expression of the rules and of the dashboard's panels."""
    exprs = [str(rule["expr"]) for rule in rules()]
    exprs += [t["expr"] for panel in dashboard()["panels"] for t in panel.get("targets", [])]
    return exprs


def queried_metric_names(exprs: list[str] | None = None) -> set[str]:
    """Metric names (not recording rules, not builtins) the expressions read."""
    found = {m for expr in (exprs if exprs is not None else queries()) for m in _METRIC.findall(expr)}
    return found - PROMETHEUS_BUILTINS
