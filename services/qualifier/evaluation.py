"""The labelled evaluation set and accuracy scoring of qualification engines.

``evals/leads.jsonl`` holds realistic first messages (SMS, web forms, portal inquiries, email,
chat; about a tenth Spanish or Spanglish) labelled with the intent and temperature of the
rubric in docs/AI_QUALIFIER.md. Each case belongs to one fixed split: ``dev``, which rules may
be tuned on, or ``heldout``, which is only ever scored.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from schemas.leads import LeadToQualify
from schemas.qualification import Intent, Qualification, Temperature
from services.qualifier.engine import QualificationEngine

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
    """How one engine did on the set."""

    engine: str
    total: int = 0
    intent_correct: int = 0
    temperature_correct: int = 0
    decided_by: Counter[str] = field(default_factory=Counter)
    by_category: dict[str, list[int]] = field(default_factory=dict)  # [cases, intent ok, temperature ok]
    misses: list[str] = field(default_factory=list)

    def add(self, case: EvalCase, result: Qualification) -> None:
        """Score one answer."""
        intent_ok, temperature_ok = result.intent == case.intent, result.temperature == case.temperature
        self.total += 1
        self.intent_correct += intent_ok
        self.temperature_correct += temperature_ok
        self.decided_by[result.engine] += 1
        row = self.by_category.setdefault(case.category, [0, 0, 0])
        row[0], row[1], row[2] = row[0] + 1, row[1] + intent_ok, row[2] + temperature_ok
        if not (intent_ok and temperature_ok):
            self.misses.append(
                f"{case.id}: expected {case.intent.value}/{case.temperature.value}, "
                f"got {result.intent.value}/{result.temperature.value}"
            )

    @property
    def intent_accuracy(self) -> float:
        """Share of cases whose intent was right."""
        return self.intent_correct / self.total if self.total else 0.0

    @property
    def temperature_accuracy(self) -> float:
        """Share of cases whose temperature was right."""
        return self.temperature_correct / self.total if self.total else 0.0


async def evaluate(
    engine: QualificationEngine, cases: list[EvalCase], name: str | None = None, concurrency: int = 4
) -> EngineScore:
    """Run ``engine`` on every case (``concurrency`` at a time) and score the answers."""
    slots = asyncio.Semaphore(concurrency)

    async def one(case: EvalCase) -> Qualification:
        async with slots:
            return await engine.qualify(case.lead())

    results = await asyncio.gather(*(one(case) for case in cases))
    score = EngineScore(name or engine.name)
    for case, result in zip(cases, results, strict=True):
        score.add(case, result)
    return score


def format_scores(scores: list[EngineScore], *, show_misses: bool = False) -> str:
    """A plain-text table: overall and per-category accuracy of each engine."""
    lines = [f"{'engine':<12} {'cases':>5} {'intent':>8} {'temperature':>12}  decided by"]
    for s in scores:
        decided = ", ".join(f"{k}={v}" for k, v in sorted(s.decided_by.items()))
        lines.append(
            f"{s.engine:<12} {s.total:>5} {s.intent_accuracy:>8.1%} "
            f"{s.temperature_accuracy:>12.1%}  {decided}"
        )
    categories = sorted({c for s in scores for c in s.by_category})
    lines.append("")
    lines.append(f"{'category':<12} " + " ".join(f"{s.engine + ' int/temp':>22}" for s in scores))
    for category in categories:
        cells = []
        for s in scores:
            n, intent_ok, temperature_ok = s.by_category.get(category, [0, 0, 0])
            cells.append(f"{f'{intent_ok}/{n}  {temperature_ok}/{n}':>22}")
        lines.append(f"{category:<12} " + " ".join(cells))
    if show_misses:
        for s in scores:
            lines += ["", f"misses of {s.engine}:", *(f"  {miss}" for miss in s.misses)]
    return "\n".join(lines)
