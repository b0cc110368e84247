"""Accuracy of the seller analyzer's CMA on held-out sales of the demo catalog.

What it measures: each held-out closed sale is priced as of its close date from the other sales
of its market area that closed before it (no peeking at later sales), with the analyzer's own
pure code (services/seller_analyzer/cma.py): comparable selection, market unit values,
adjustments, weights, outliers. The subject is described as a seller would (beds, baths, living
area, year built, coordinates, condition "good"), never with its price.

It prints the median absolute percentage error (MdAPE), the share within 5 %, 10 % and 20 %,
how often the sale price fell inside the low-high range, the mean confidence, and the same
errors for two baselines measured in the same run: the market area's median $/sq ft times the
living area, and the neighbourhood's. Ratios below 1 mean the CMA's error is smaller.

No services needed. Run from the repository root:
    .venv/bin/python -m bench.cma_accuracy [--holdout 500] [--recent-days 180] [--seed 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import defaultdict
from datetime import date
from typing import Any

from jorge_cli.demo_catalog import demo_catalog
from schemas.catalog import CatalogProperty
from services.seller_analyzer.cma import CmaError, analyze
from services.seller_analyzer.comparables import Subject

AS_OF = date(2026, 11, 23)


def _ape(estimate: float, actual: int) -> float:
    return abs(estimate - actual) / actual


def _summary(errors: list[float]) -> dict[str, float]:
    return {
        "mdape_pct": round(100 * statistics.median(errors), 2),
        "mean_ape_pct": round(100 * statistics.fmean(errors), 2),
        "within_5_pct": round(100 * sum(e <= 0.05 for e in errors) / len(errors), 1),
        "within_10_pct": round(100 * sum(e <= 0.10 for e in errors) / len(errors), 1),
        "within_20_pct": round(100 * sum(e <= 0.20 for e in errors) / len(errors), 1),
    }


def _median_ppsf(sales: list[CatalogProperty]) -> float | None:
    values = [(s.close_price or 0) / s.living_area for s in sales if s.living_area]
    return statistics.median(values) if values else None


def run(holdout: int, recent_days: int, seed: int) -> dict[str, Any]:
    """Price ``holdout`` recent sales from the others; every figure of the report."""
    homes = [row.to_property() for row in demo_catalog(AS_OF)]
    sales = [h for h in homes if h.standard_status == "Closed" and h.close_date]
    active: defaultdict[str | None, int] = defaultdict(int)
    for h in homes:
        if h.standard_status == "Active":
            active[h.city] += 1
    by_city: dict[str | None, list[CatalogProperty]] = defaultdict(list)
    for s in sales:
        by_city[s.city].append(s)
    recent = [s for s in sales if (AS_OF - s.close_date).days <= recent_days]  # type: ignore[operator]
    held = random.Random(seed).sample(recent, min(holdout, len(recent)))
    cma: list[float] = []
    city_base: list[float] = []
    hood_base: list[float] = []
    inside = 0
    confidence: list[float] = []
    failures: defaultdict[str, int] = defaultdict(int)
    steps: defaultdict[int, int] = defaultdict(int)
    started = time.perf_counter()
    for home in held:
        assert home.close_date and home.close_price and home.living_area
        before = [
            s for s in by_city[home.city]
            if s.listing_id != home.listing_id and s.close_date and s.close_date <= home.close_date
            and (home.close_date - s.close_date).days <= 548
        ]  # fmt: skip
        subject = Subject(
            address=home.address or "", bedrooms=home.bedrooms or 0, bathrooms=home.bathrooms or 0,
            living_area=home.living_area, condition="good", year_built=home.year_built,
            latitude=home.latitude, longitude=home.longitude, city=home.city,
        )  # fmt: skip
        try:
            result = analyze(subject, before, active[home.city], home.close_date, home.city or "")
        except CmaError as error:
            failures[error.code] += 1
            continue
        price = result.cma.price_recommendation
        cma.append(_ape(price.mid, home.close_price))
        inside += price.low <= home.close_price <= price.high
        confidence.append(price.confidence)
        steps[result.cma.market_analysis["comparable_search"]["step"]] += 1
        if (ppsf := _median_ppsf(before)) is not None:
            city_base.append(_ape(ppsf * home.living_area, home.close_price))
        hood = [s for s in before if s.subdivision == home.subdivision]
        if (ppsf := _median_ppsf(hood)) is not None:
            hood_base.append(_ape(ppsf * home.living_area, home.close_price))
    elapsed = time.perf_counter() - started
    report: dict[str, Any] = {
        "demo_catalog": {"as_of": AS_OF.isoformat(), "rows": len(homes), "closed_sales": len(sales)},
        "held_out": len(held),
        "priced": len(cma),
        "failures": dict(failures),
        "cma": _summary(cma),
        "baseline_market_median_ppsf": _summary(city_base),
        "baseline_neighbourhood_median_ppsf": _summary(hood_base),
        "range_coverage_pct": round(100 * inside / len(cma), 1),
        "mean_confidence": round(statistics.fmean(confidence), 3),
        "search_step_used": {str(k): v for k, v in sorted(steps.items())},
        "ms_per_cma": round(1000 * elapsed / max(len(held), 1), 2),
    }
    report["mdape_ratio_vs_market_baseline"] = round(
        report["cma"]["mdape_pct"] / report["baseline_market_median_ppsf"]["mdape_pct"], 2
    )
    report["mdape_ratio_vs_neighbourhood_baseline"] = round(
        report["cma"]["mdape_pct"] / report["baseline_neighbourhood_median_ppsf"]["mdape_pct"], 2
    )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--holdout", type=int, default=500, help="How many recent sales to hold out.")
    parser.add_argument("--recent-days", type=int, default=180, help="Hold out sales closed this recently.")
    parser.add_argument("--seed", type=int, default=1, help="Which sales are held out.")
    parser.add_argument("--json", action="store_true", help="One JSON object instead of a table.")
    args = parser.parse_args()
    report = run(args.holdout, args.recent_days, args.seed)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"Held out {report['held_out']} sales of the last {args.recent_days} days; priced {report['priced']}"  # noqa: E501
          f" (failures: {report['failures'] or 'none'}); {report['ms_per_cma']} ms per CMA")  # fmt: skip
    print(f"{'method':<34} {'MdAPE %':>8} {'mean %':>7} {'<=5 %':>6} {'<=10 %':>7} {'<=20 %':>7}")
    for name, key in (
        ("CMA (seller_analyzer)", "cma"),
        ("baseline: market median $/sq ft", "baseline_market_median_ppsf"),
        ("baseline: neighbourhood $/sq ft", "baseline_neighbourhood_median_ppsf"),
    ):
        s = report[key]
        print(f"{name:<34} {s['mdape_pct']:>8} {s['mean_ape_pct']:>7} {s['within_5_pct']:>6} "
              f"{s['within_10_pct']:>7} {s['within_20_pct']:>7}")  # fmt: skip
    print(f"MdAPE ratio CMA / market baseline: {report['mdape_ratio_vs_market_baseline']}x; "
          f"/ neighbourhood baseline: {report['mdape_ratio_vs_neighbourhood_baseline']}x")  # fmt: skip
    print(f"Sale price inside the low-high range: {report['range_coverage_pct']} %; "
          f"mean confidence {report['mean_confidence']}; search step used: {report['search_step_used']}")  # fmt: skip  # noqa: E501


if __name__ == "__main__":
    main()
