"""The labelled eval set and `jorge eval` (rules baseline; Claude through the fake API)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from typer.testing import CliRunner

from jorge_cli.main import app
from sandboxes.fake_anthropic import FakeAnthropic
from services.qualifier.evaluation import evaluate, format_scores, load_eval_set
from services.qualifier.rules import RulesQualificationEngine
from tests.support.fake_claude import rules_responder

REQUIRED_CATEGORIES = {"buyer", "seller", "investor", "renter", "vague", "angry", "non_english", "spam"}


def test_the_set_loads_with_at_least_100_valid_labelled_cases() -> None:
    cases = load_eval_set()  # pydantic refuses unknown intents, temperatures and fields
    assert len(cases) >= 100
    assert len({case.id for case in cases}) == len(cases)
    counts = Counter(case.category for case in cases)
    assert set(counts) >= REQUIRED_CATEGORIES
    assert all(counts[category] >= 8 for category in REQUIRED_CATEGORIES)
    assert all(case.message.strip() for case in cases)
    assert {case.intent for case in cases} == {
        "buyer_intent",
        "seller_intent",
        "buyer_and_seller_intent",
        "renter_intent",
        "unknown_intent",
    }
    assert {case.temperature for case in cases} == {"hot", "warm", "cold"}


def test_rules_baseline_is_measured_and_printed(capsys: pytest.CaptureFixture[str]) -> None:
    score = asyncio.run(evaluate(RulesQualificationEngine(), load_eval_set()))
    with capsys.disabled():
        print("\n" + format_scores([score]))
    assert score.total >= 100
    # The baseline is whatever the rules score; these floors only catch a broken engine or set.
    assert score.intent_accuracy > 0.6 and score.temperature_accuracy > 0.6


def test_jorge_eval_prints_each_engines_accuracy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("jorge_cli.state.read_running_state", lambda: None)
    with FakeAnthropic(rules_responder) as fake:
        env = {
            "ANTHROPIC_API_KEY": "sk-ant-test",
            "ANTHROPIC_BASE_URL": fake.url,
            "CLAUDE_MAX_CONCURRENCY": "8",
        }
        result = CliRunner().invoke(app, ["eval"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("rules-v1") and "%" in line for line in lines)
    assert any(line.startswith("claude") and "claude=" in line for line in lines)

    rules_only = CliRunner().invoke(app, ["eval", "--engine", "rules"], env={"ANTHROPIC_API_KEY": ""})
    assert rules_only.exit_code == 0, rules_only.output
    assert "rules-v1" in rules_only.output and "claude=" not in rules_only.output
