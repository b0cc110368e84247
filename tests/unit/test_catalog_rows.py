"""Reading MLS exports: RESO columns validated row by row, bad rows named by line, and the demo."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from jorge_cli.demo_catalog import demo_catalog, demo_rows
from jorge_runtime.catalog.importer import detect_format, parse_catalog, snapshot_policy
from schemas.catalog import CatalogRow, property_kind

COLUMNS = (
    "ListingId,StandardStatus,ListPrice,ClosePrice,CloseDate,BedroomsTotal,BathroomsTotalDecimal,LivingArea,"
    "City,PropertySubType,ListAgentFullName,Latitude,Longitude"
)
CSV = (
    COLUMNS
    + """
A1,Active,"725000.00",,,3,2.5,1850,Rancho Cucamonga,Single Family Residence,Jo Agent,34.12,-117.57
A2,Pending,,,,3,2,1500,Upland,Condominium,Jo Agent,,
C1,Closed,700000,695000,2026-10-02,4,3,2400,Upland,Townhouse,,,
C2,Closed,700000,,2026-10-02,4,3,2400,Upland,,,,
A3,Sold,1,,,1,1,900,Ontario,,,,
A4,Active,500000,,,2,1,-40,Ontario,,,,
A5,active,510000,,,20,10,1000,Ontario,,,,
A6,Active,520000,,,2,1,1000,Ontario,,,34.1,
A1,Active,735000,,,3,2.5,1850,Rancho Cucamonga,Single Family Residence,,34.12,-117.57
"""
)


def test_csv_rows_are_validated_and_bad_ones_named_by_line() -> None:
    parsed = parse_catalog(CSV, "csv")
    assert [row.listing_id for row in parsed.rows] == ["C1", "A1"]  # A1's later row wins
    assert parsed.duplicates == 1
    assert parsed.rows[1].list_price == 735_000
    assert parsed.ignored_columns == {"ListAgentFullName"}
    reasons = {error.line: error.reason for error in parsed.errors}
    assert reasons.keys() == {3, 5, 6, 7, 8, 9}  # the header is line 1
    assert "a Pending row needs ListPrice" in reasons[3]
    assert "a Closed row needs ClosePrice and CloseDate" in reasons[5]
    assert "StandardStatus must be one of" in reasons[6]
    assert reasons[7].startswith("LivingArea: Input should be greater than 0")
    assert "too small for BedroomsTotal" in reasons[8]  # 20 bedrooms in 1,000 sq ft
    assert "Latitude and Longitude together" in reasons[9]


def test_values_are_normalised() -> None:
    row = parse_catalog(CSV, "csv").rows[1]
    assert row.list_price == 735_000 and row.bathrooms_total == 2.5 and row.kind == "single_family"
    closed = parse_catalog(CSV, "csv").rows[0]
    assert closed.close_date == date(2026, 10, 2) and closed.kind == "townhouse"
    assert CatalogRow.model_validate({"ListingId": "X", "StandardStatus": "active under contract",
                                      "ListPrice": 1}).standard_status == "Active Under Contract"  # fmt: skip
    assert property_kind("Condominium") == "condo" and property_kind("Residential Income") == "multi_family"
    assert property_kind("Castle") is None


def test_json_lines_with_bad_lines() -> None:
    text = (
        '{"ListingId": "J1", "StandardStatus": "Active", "ListPrice": 600000, "X-Custom": 1}\n'
        "\n"
        "not json\n"
        "[1, 2]\n"
        '{"ListingId": "J2", "StandardStatus": "Closed", "ClosePrice": 580000, "CloseDate": "2026-09-01"}\n'
    )
    parsed = parse_catalog(text, "jsonl")
    assert [r.listing_id for r in parsed.rows] == ["J1", "J2"]
    assert [(e.line, e.reason.split(" (")[0]) for e in parsed.errors] == [
        (3, "not valid JSON"),
        (4, "not a JSON object"),
    ]
    assert parsed.ignored_columns == {"X-Custom"}


def test_a_snapshot_keeps_rejected_listings_and_refuses_when_too_many_rows_are_bad() -> None:
    parsed = parse_catalog(CSV, "csv")
    assert parsed.records == 9  # 2 valid, 1 earlier row of A1, 6 rejected
    assert parsed.rejected_ids == {"A2", "C2", "A3", "A4", "A5", "A6"}  # never taken off the market
    policy = snapshot_policy(parsed, max_bad_share=0.5, max_withdraw_share=0.3)
    assert policy.refusal == "6 of 9 rows were rejected (66.7%, more than the 50.0% allowed)"
    assert policy.rejected_ids == frozenset(parsed.rejected_ids) and policy.max_withdraw_share == 0.3
    assert snapshot_policy(parsed, max_bad_share=0.7).refusal is None
    clean = parse_catalog(COLUMNS + "\nA1,Active,1,,,,,,,,,,\n", "csv")
    assert snapshot_policy(clean, max_bad_share=0).refusal is None
    empty = parse_catalog(COLUMNS + "\n", "csv")
    assert snapshot_policy(empty).refusal is None  # the share of listings missing decides


def test_the_format_is_detected() -> None:
    assert detect_format(Path("export.csv"), "{") == "csv"
    assert detect_format(Path("export.jsonl"), "ListingId") == "jsonl"
    assert detect_format(Path("export.txt"), '  {"ListingId": 1}') == "jsonl"
    assert detect_format(Path("export"), "ListingId,City") == "csv"


def test_the_demo_catalog_is_deterministic_and_valid() -> None:
    as_of = date(2026, 11, 23)
    assert demo_rows(as_of) == demo_rows(as_of)
    rows = demo_catalog(as_of)
    assert 3_000 <= len(rows) <= 5_000
    assert len({r.listing_id for r in rows}) == len(rows)
    assert len({r.unparsed_address for r in rows}) == len(rows)
    closed = [r for r in rows if r.standard_status == "Closed"]
    active = [r for r in rows if r.standard_status == "Active"]
    assert len(closed) > 2_000 and len(active) > 400
    cities = {r.city for r in rows}
    assert {"Rancho Cucamonga", "Upland", "Ontario", "Fontana"} <= cities
    assert all(r.close_date and (as_of - r.close_date).days <= 540 for r in closed)
    rc = sorted(r.close_price or 0 for r in closed if r.city == "Rancho Cucamonga")
    assert 600_000 < rc[len(rc) // 2] < 1_000_000  # the market's median sale price
    assert all(33.9 < (r.latitude or 0) < 34.2 and -117.8 < (r.longitude or 0) < -117.3 for r in rows)
