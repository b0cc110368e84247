"""The dependency audit's reading of pip-audit reports: found, clean, or not performed."""

from __future__ import annotations

from jorge_cli.dependency_audit import summarize


def test_unreachable_data_is_not_performed_not_a_pass() -> None:
    report = {
        "dependencies": [
            {"name": "aiokafka", "skip_reason": "Dependency not found on PyPI and could not be audited"},
            {"name": "httpx", "skip_reason": "Dependency not found on PyPI and could not be audited"},
        ]
    }
    outcome = summarize(report)
    assert outcome.exit_code == 0
    assert "NOT PERFORMED" in outcome.summary and "none of 2 packages" in outcome.summary


def test_vulnerabilities_fail_and_a_clean_audit_passes() -> None:
    vulnerable = {
        "dependencies": [
            {
                "name": "jinja2",
                "version": "3.1.2",
                "vulns": [{"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": ["3.1.3"]}],
            },
            {"name": "httpx", "version": "0.28.1", "vulns": []},
        ]
    }
    found = summarize(vulnerable)
    assert found.exit_code == 1 and "jinja2 3.1.2: GHSA-h5c8-rqwp-cp95 (fixed in 3.1.3)" in found.summary
    clean = summarize({"dependencies": [{"name": "httpx", "version": "0.28.1", "vulns": []}]})
    assert clean.exit_code == 0 and "1 packages audited" in clean.summary
