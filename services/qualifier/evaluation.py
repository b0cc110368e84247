"""The labelled evaluation set and accuracy scoring of qualification engines.

``evals/leads.jsonl`` holds realistic first messages (SMS, web forms, portal inquiries, email,
chat; about a tenth Spanish or Spanglish) labelled with the intent and temperature of the
rubric in docs/AI_QUALIFIER.md. Each case belongs to one fixed split: ``dev``, which rules may
be tuned on, or ``heldout``, which is only ever scored.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from schemas.leads import LeadToQualify
from schemas.qualification import Intent, Qualification, Temperature
from services.qualifier.engine import QualificationEngine

# Calendar phrases in the set ("lease up end of Jan", "by summer") were labelled as of this
# day, so engines are scored as of it too: the figures must not drift with the calendar.
LABELLED_ON = date(2026, 12, 3)

Split = Literal["dev", "heldout"]
SPLITS: tuple[Split, ...] = ("dev", "heldout")


class EvalCase(BaseModel):
    """One labelled lead message."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    split: Split
    category: str
    channel: str
    language: str
    message: str
    source: str | None = None
    intent: Intent
    temperature: Temperature

    def lead(self) -> LeadToQualify:
        """The case as the lead an engine qualifies."""
        return LeadToQualify(lead_id=f"eval-{self.id}", message=self.message, source=self.source)


def load_eval_set(path: Path | None = None) -> list[EvalCase]:
    """The cases of ``path``, or of the set shipped with the qualifier."""
    if path is None:
        text = resources.files("services.qualifier").joinpath("evals/leads.jsonl").read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    return [EvalCase.model_validate_json(line) for line in text.splitlines() if line.strip()]


@dataclass
class EngineScore:
    """How one engine did on one split of the set."""

    engine: str
    split: str = "all"
    total: int = 0
    intent_correct: int = 0
    temperature_correct: int = 0
    decided_by: Counter[str] = field(default_factory=Counter)
    by_category: dict[str, list[int]] = field(default_factory=dict)  # [cases, intent ok, temperature ok]
    intent_confusion: Counter[tuple[Intent, Intent]] = field(default_factory=Counter)  # (expected, got)
    seconds_per_lead: list[float] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)

    def add(self, case: EvalCase, result: Qualification, seconds: float = 0.0) -> None:
        """Score one answer that took ``seconds`` to come back."""
        intent_ok, temperature_ok = result.intent == case.intent, result.temperature == case.temperature
        self.total += 1
        self.intent_correct += intent_ok
        self.temperature_correct += temperature_ok
        self.decided_by[result.engine] += 1
        self.intent_confusion[(case.intent, result.intent)] += 1
        self.seconds_per_lead.append(seconds)
        row = self.by_category.setdefault(case.category, [0, 0, 0])
        row[0], row[1], row[2] = row[0] + 1, row[1] + intent_ok, row[2] + temperature_ok
        if not (intent_ok and temperature_ok):
            self.misses.append(
                f"{case.id}: expected {case.intent.value}/{case.temperature.value}, "
                f"got {result.intent.value}/{result.temperature.value}: {case.message[:90]!r}"
            )

    @property
    def intent_accuracy(self) -> float:
        """Share of cases whose intent was right."""
        return self.intent_correct / self.total if self.total else 0.0

    @property
    def temperature_accuracy(self) -> float:
        """Share of cases whose temperature was right."""
        return self.temperature_correct / self.total if self.total else 0.0

    def latency_ms(self) -> tuple[float, float, float]:
        """p50, p95 and max milliseconds per lead."""
        if not self.seconds_per_lead:
            return 0.0, 0.0, 0.0
        ordered = sorted(self.seconds_per_lead)
        p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
        return 1000 * statistics.median(ordered), 1000 * p95, 1000 * ordered[-1]


async def evaluate(
    engine: QualificationEngine,
    cases: list[EvalCase],
    name: str | None = None,
    concurrency: int = 4,
    split: str = "all",
) -> EngineScore:
    """Run ``engine`` on every case (``concurrency`` at a time), time and score the answers."""
    slots = asyncio.Semaphore(concurrency)

    async def one(case: EvalCase) -> tuple[Qualification, float]:
        async with slots:
            started = time.perf_counter()
            result = await engine.qualify(case.lead())
            return result, time.perf_counter() - started

    answers = await asyncio.gather(*(one(case) for case in cases))
    score = EngineScore(name or engine.name, split)
    for case, (result, seconds) in zip(cases, answers, strict=True):
        score.add(case, result, seconds)
    return score


async def evaluate_splits(
    engine: QualificationEngine, cases: list[EvalCase], name: str | None = None, concurrency: int = 4
) -> list[EngineScore]:
    """One score per split of ``cases`` (dev, then held-out), in that order."""
    return [
        await evaluate(engine, [c for c in cases if c.split == split], name, concurrency, split)
        for split in SPLITS
        if any(c.split == split for c in cases)
    ]


def format_confusion(score: EngineScore) -> str:
    """The intent confusion table of one score: a row per expected intent, a column per answer."""
    intents = list(Intent)
    width = max(len(i.value) for i in intents) + 2
    lines = [f"{'expected/got':<{width + 4}}" + "".join(f"{i.value:>{width}}" for i in intents)]
    for expected in intents:
        cells = "".join(f"{score.intent_confusion[(expected, got)]:>{width}}" for got in intents)
        lines.append(f"{expected.value:<{width + 4}}{cells}")
    return "\n".join(lines)


def format_scores(scores: list[EngineScore], *, show_misses: bool = False) -> str:
    """A plain-text report: per engine and split, accuracy, per-lead time, categories, confusion."""
    lines = [
        f"{'engine':<10} {'split':<8} {'cases':>5} {'intent':>7} {'temperature':>12} "
        f"{'ms p50/p95/max':>18}  decided by"
    ]
    for s in scores:
        decided = ", ".join(f"{k}={v}" for k, v in sorted(s.decided_by.items()))
        p50, p95, worst = s.latency_ms()
        timing = f"{p50:.2f}/{p95:.2f}/{worst:.2f}"
        lines.append(
            f"{s.engine:<10} {s.split:<8} {s.total:>5} {s.intent_accuracy:>7.1%} "
            f"{s.temperature_accuracy:>12.1%} {timing:>18}  {decided}"
        )
    categories = sorted({c for s in scores for c in s.by_category})
    lines.append("")
    lines.append(f"{'category':<16}" + "".join(f"{f'{s.engine} {s.split} int/temp':>28}" for s in scores))
    for category in categories:
        cells = []
        for s in scores:
            n, intent_ok, temperature_ok = s.by_category.get(category, [0, 0, 0])
            cells.append(f"{f'{intent_ok}/{n}  {temperature_ok}/{n}':>28}")
        lines.append(f"{category:<16}" + "".join(cells))
    for s in scores:
        lines += ["", f"intent confusion of {s.engine} on {s.split}:", format_confusion(s)]
    if show_misses:
        for s in scores:
            lines += ["", f"misses of {s.engine} on {s.split}:", *(f"  {miss}" for miss in s.misses)]
    return "\n".join(lines)
