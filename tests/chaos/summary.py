"""The chaos suite's terminal summary: one line per scenario, also written to .chaos/summary.txt.

Called from tests/conftest.py (under xdist only the top conftest runs in the controller)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

#: Where each scenario leaves its counts (one JSON file each); summary.txt gathers them. The same
#: path in every xdist worker and in the controller.
RESULTS_DIR = Path(__file__).resolve().parents[2] / ".chaos"

COLUMNS = ("sent", "accepted", "completed", "lost", "duplicated", "refused_but_processed", "dead_lettered")


def forget_last_run(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller, or a run without xdist
        shutil.rmtree(RESULTS_DIR, ignore_errors=True)


def summary_lines() -> list[str]:
    """A header and one line per scenario that ran (with its problems, if any), by name."""
    rows = [json.loads(p.read_text()) for p in sorted(RESULTS_DIR.glob("*.json"))]
    if not rows:
        return []
    lines = [f"{'scenario':<24}" + "".join(f"{c.split('_')[0]:>11}" for c in COLUMNS) + "  answers"]
    for row in rows:
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(row["statuses"].items()))
        counts = "".join(f"{row[c]:>11}" for c in COLUMNS)
        slowest = row["slowest_answer_seconds"]
        lines.append(f"{row['scenario']:<24}{counts}  {answers}; slowest {slowest} s")
        lines += [f"    {problem}" for problem in row["problems"]]
    return lines


def write_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = summary_lines()
    if not lines:
        return
    terminalreporter.section("chaos summary (refused = refused but processed; dead = dead-lettered)")
    for line in lines:
        terminalreporter.write_line(line)
    (RESULTS_DIR / "summary.txt").write_text("\n".join(lines) + "\n")
