"""deploy/monitoring/alertmanager: amtool accepts the configuration and its templates, routes each
severity to its people, every inhibition names real alerts, runbook links come out absolute, and
no receiver credential is written in the file."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.monitoring import REPO, rules
from tests.support.tools import require_tool

ALERTMANAGER = REPO / "deploy" / "monitoring" / "alertmanager"
CONFIG = ALERTMANAGER / "alertmanager.yml"


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("amtool"), *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def local_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The configuration with its templates read from the repository instead of /etc/alertmanager."""
    config = yaml.safe_load(CONFIG.read_text())
    config["templates"] = [str(ALERTMANAGER / "templates" / "*.tmpl")]
    path = tmp_path_factory.mktemp("alertmanager") / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_amtool_accepts_the_configuration_and_templates(local_config: Path) -> None:
    for path in (CONFIG, local_config):
        result = amtool("check-config", str(path))
        assert result.returncode == 0, result.stdout + result.stderr
    assert "1 templates" in amtool("check-config", str(local_config)).stdout


@pytest.mark.parametrize(
    ("severity", "receiver"),
    [("critical", "oncall-pager"), ("warning", "team-slack"), ("info", "team-email")],
)
def test_each_severity_reaches_its_receiver(local_config: Path, severity: str, receiver: str) -> None:
    result = amtool("config", "routes", "test", f"--config.file={local_config}", f"severity={severity}")
    assert result.stdout.strip() == receiver, result.stdout + result.stderr
    assert severity in {rule["labels"]["severity"] for rule in rules() if "alert" in rule} | {"info"}


def test_inhibitions_name_real_alerts() -> None:
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    config = yaml.safe_load(CONFIG.read_text())
    for inhibit in config["inhibit_rules"]:
        for matcher in inhibit["source_matchers"] + inhibit["target_matchers"]:
            name, op, value = re.match(r'(\w+)(=~|=)"(.*)"', matcher).groups()  # type: ignore[union-attr]
            if name == "alertname":
                names = value.split("|") if op == "=~" else [value]
                assert set(names) <= alerts, f"unknown alert in {matcher}"


def test_runbook_links_are_absolute_from_one_base() -> None:
    text = '{{ template "jorge.runbook_base" . }}|{{ template "jorge.text" . }}'
    result = amtool(
        "template",
        "render",
        f"--template.glob={ALERTMANAGER / 'templates' / '*.tmpl'}",
        f"--template.text={text}",
    )
    assert result.returncode == 0, result.stderr
    base, _, body = result.stdout.partition("|")
    assert base.startswith("https://") and base.endswith("/")
    assert f"Runbook: {base}" in body
    templates = (ALERTMANAGER / "templates" / "jorge.tmpl").read_text()
    assert templates.count("https://") == 1, "one configurable base"
    assert all(rule["annotations"]["runbook_url"].startswith("docs/") for rule in rules() if "alert" in rule)


def test_receiver_credentials_come_from_files() -> None:
    text = CONFIG.read_text()
    for inline in ("api_url:", "routing_key:", "service_key:", "auth_password:", "smtp_auth_password:"):
        assert inline not in text, f"{inline} must be a *_file mounted from a Secret"
    assert {"slack-webhook-url", "pagerduty-routing-key", "smtp-password"} <= set(
        re.findall(r"secrets/([\w-]+)", text)
    )
