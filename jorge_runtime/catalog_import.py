"""Importing an MLS export (CSV or JSON Lines, RESO column names) into the property catalog.

Parsing validates every row and reports the bad ones by line number; loading copies the good
rows into a temporary table and upserts them in one statement that leaves identical rows
untouched, so importing the same file twice changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from jorge_runtime.db import DbConnection
from schemas.catalog import KNOWN_COLUMNS, CatalogRow

# Table columns in the order rows are copied; all but organization_id come from CatalogRow.
_COLUMNS = (
    "organization_id", "listing_id", "standard_status", "property_type", "property_kind",
    "unparsed_address", "city", "postal_code", "subdivision_name", "latitude", "longitude",
    "list_price", "close_price", "close_date", "bedrooms_total", "bathrooms_total", "living_area",
    "lot_size_square_feet", "year_built", "days_on_market", "garage_spaces", "pool_private_yn",
    "view_yn", "stories_total",
)  # fmt: skip
_UPDATED = [c for c in _COLUMNS if c not in ("organization_id", "listing_id")]
_UPSERT = f"""
INSERT INTO catalog_properties ({", ".join(_COLUMNS)})
SELECT {", ".join(_COLUMNS)} FROM catalog_import
ON CONFLICT (organization_id, listing_id) DO UPDATE
   SET {", ".join(f"{c} = EXCLUDED.{c}" for c in _UPDATED)}, updated_at = now()
 WHERE ({", ".join(f"catalog_properties.{c}" for c in _UPDATED)})
       IS DISTINCT FROM ({", ".join(f"EXCLUDED.{c}" for c in _UPDATED)})
RETURNING (xmax = 0) AS inserted"""


@dataclass(frozen=True, slots=True)
class RowError:
    """A row that was not imported: its line in the file and why."""

    line: int
    reason: str


@dataclass
class ParsedCatalog:
    """The valid rows of a file, the rejected ones and the columns that were ignored."""

    rows: list[CatalogRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    ignored_columns: set[str] = field(default_factory=set)
    duplicates: int = 0


@dataclass(frozen=True, slots=True)
class ImportCounts:
    """What loading changed: new rows, changed rows, rows already identical."""

    inserted: int
    updated: int
    unchanged: int


def _reason(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _records(text: str, fmt: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, record or the reason it cannot be read) for every data line."""
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        for record in reader:
            if None in record:
                yield reader.line_num, "more cells than the header has columns"
            else:
                yield reader.line_num, dict(record)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"not valid JSON ({exc.msg})"
            continue
        yield number, record if isinstance(record, dict) else "not a JSON object"


def detect_format(path: Path, text: str) -> str:
    """`csv` or `jsonl`, from the file name, else from the first non-blank character."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def parse_catalog(text: str, fmt: str) -> ParsedCatalog:
    """Validate every row of a CSV or JSON Lines export; a later row for a ListingId wins."""
    parsed = ParsedCatalog()
    by_id: dict[str, CatalogRow] = {}
    known = set(KNOWN_COLUMNS)
    for line, record in _records(text, fmt):
        if isinstance(record, str):
            parsed.errors.append(RowError(line, record))
            continue
        parsed.ignored_columns.update(k for k in record if k not in known)
        try:
            row = CatalogRow.model_validate(record)
        except ValidationError as exc:
            parsed.errors.append(RowError(line, _reason(exc)))
            continue
        if row.listing_id in by_id:
            parsed.duplicates += 1
            del by_id[row.listing_id]  # keep file order for the survivor
        by_id[row.listing_id] = row
    parsed.rows = list(by_id.values())
    return parsed


def _record(organization_id: str, row: CatalogRow) -> tuple[Any, ...]:
    return (
        organization_id, row.listing_id, row.standard_status,
        row.property_sub_type or row.property_type, row.kind, row.unparsed_address, row.city,
        row.postal_code, row.subdivision_name, row.latitude, row.longitude, row.list_price,
        row.close_price, row.close_date, row.bedrooms_total, row.bathrooms_total, row.living_area,
        row.lot_size_square_feet, row.year_built, row.days_on_market, row.garage_spaces,
        row.pool_private_yn, row.view_yn, row.stories_total,
    )  # fmt: skip


async def load_rows(conn: DbConnection, organization_id: str, rows: Iterable[CatalogRow]) -> ImportCounts:
    """Upsert rows into the organisation's catalog in one transaction (COPY, then one statement)."""
    records = [_record(organization_id, row) for row in rows]
    async with conn.transaction():
        await conn.execute(
            """CREATE TEMP TABLE catalog_import
                   (LIKE catalog_properties INCLUDING DEFAULTS) ON COMMIT DROP"""
        )
        await conn.copy_records_to_table("catalog_import", records=records, columns=list(_COLUMNS))
        results = await conn.fetch(_UPSERT)
    inserted = sum(1 for r in results if r["inserted"])
    updated = len(results) - inserted
    return ImportCounts(inserted=inserted, updated=updated, unchanged=len(records) - len(results))
