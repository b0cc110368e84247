"""`./jorge test`'s dependency audit: pip-audit, honest about whether it could audit anything.

pip-audit looks every installed package up in PyPI's vulnerability data. Where that data cannot
be reached (a machine with only a package mirror), it reports each package as "not found" and
still says "No known vulnerabilities found" with exit 0. This wrapper reads its JSON report
and says which happened: vulnerabilities (exit 1, the test command fails), a clean audit
(exit 0), or no audit at all (exit 0, said plainly: an unreachable database is not a finding,
and not a pass either).

    python -m jorge_cli.dependency_audit [--report FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TIMEOUT_SECONDS = 300


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the audit established, and the exit code the test command should see."""

    exit_code: int
    summary: str


def summarize(report: dict[str, Any]) -> Outcome:
    """Read a pip-audit JSON report (``pip-audit -f json``)."""
    dependencies = report.get("dependencies", [])
    skipped = [d for d in dependencies if "skip_reason" in d]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    audited = len(dependencies) - len(skipped)
    if vulnerable:
        lines = [
            f"  {d['name']} {d.get('version', '?')}: "
            + ", ".join(
                f"{v['id']} (fixed in {', '.join(v.get('fix_versions') or ['-'])})" for v in d["vulns"]
            )
            for d in vulnerable
        ]
        return Outcome(1, f"pip-audit: {len(vulnerable)} vulnerable package(s):\n" + "\n".join(lines))
    if dependencies and audited == 0:
        return Outcome(
            0,
            f"pip-audit: NOT PERFORMED - vulnerability data unreachable from this machine "
            f"(none of {len(dependencies)} packages could be looked up). Run `./jorge test` "
            "where PyPI's vulnerability data is reachable to audit the dependencies.",
        )
    note = f"; {len(skipped)} could not be looked up" if skipped else ""
    return Outcome(0, f"pip-audit: {audited} packages audited, no known vulnerabilities{note}.")


def _advisories(vulns: list[dict[str, Any]]) -> str:
    return ", ".join(f"{v['id']} (fixed in {', '.join(v.get('fix_versions') or ['-'])})" for v in vulns)


def run() -> Outcome:
    """Audit this environment's installed packages (the project itself, editable, excluded)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        argv = [sys.executable, "-m", "pip_audit", "--skip-editable", "--progress-spinner", "off",
                "-f", "json", "-o", str(report)]  # fmt: skip
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)  # noqa: S603  our own interpreter, fixed argv
        except subprocess.TimeoutExpired:
            return Outcome(0, f"pip-audit: NOT PERFORMED - no answer within {TIMEOUT_SECONDS} s.")
        if not report.exists():
            return Outcome(0, f"pip-audit: NOT PERFORMED - it failed: {done.stderr.strip()[-500:]}")
        return summarize(json.loads(report.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--report", type=Path, help="summarise this pip-audit JSON report instead of running it"
    )
    args = parser.parse_args()
    outcome = summarize(json.loads(args.report.read_text())) if args.report else run()
    print(outcome.summary, file=sys.stderr)
    sys.exit(outcome.exit_code)


if __name__ == "__main__":
    main()
