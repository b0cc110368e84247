"""Importing an MLS export (CSV or JSON Lines, RESO column names) into the property catalog.

Parsing validates every row and reports the bad ones by line number; loading copies the good
rows into a temporary table and upserts them in one statement that leaves identical rows
untouched, so importing the same file twice changes nothing. A snapshot import (the file is the
organisation's complete on-market inventory) then sets the on-market listings the file lacks to
Withdrawn, unless that would take too large a share of the inventory off the market.
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
from schemas.catalog import KNOWN_COLUMNS, ON_MARKET_STATUSES, WITHDRAWN, CatalogRow

# Table columns in the order rows are copied; all but organization_id come from CatalogRow.
_COLUMNS = (
    "organization_id", "listing_id", "standard_status", "property_type", "property_kind",
    "unparsed_address", "city", "postal_code", "subdivision_name", "latitude", "longitude",
    "list_price", "close_price", "close_date", "bedrooms_total", "bathrooms_total", "living_area",
    "lot_size_square_feet", "year_built", "days_on_market", "garage_spaces", "pool_private_yn",
    "view_yn", "stories_total",
)  # fmt: skip
_UPDATED = [c for c in _COLUMNS if c not in ("organization_id", "listing_id")]
# A row the file lists is the MLS's word on it: a listing a snapshot had withdrawn comes back
# with the file's status, and the snapshot's mark is cleared.
_UPSERT = f"""
INSERT INTO catalog_properties ({", ".join(_COLUMNS)})
SELECT {", ".join(_COLUMNS)} FROM catalog_import
ON CONFLICT (organization_id, listing_id) DO UPDATE
   SET {", ".join(f"{c} = EXCLUDED.{c}" for c in _UPDATED)}, withdrawn_by_snapshot_at = NULL,
       updated_at = now()
 WHERE ({", ".join(f"catalog_properties.{c}" for c in _UPDATED)}, catalog_properties.withdrawn_by_snapshot_at)
       IS DISTINCT FROM ({", ".join(f"EXCLUDED.{c}" for c in _UPDATED)}, NULL::timestamptz)
RETURNING (xmax = 0) AS inserted"""  # noqa: S608  constant SQL, values as $n placeholders
#: A snapshot withdraws nothing when more than this share of its file's rows were rejected...
DEFAULT_MAX_BAD_SHARE = 0.01
#: ...or when it would take more than this share of the on-market listings off the market.
DEFAULT_MAX_WITHDRAW_SHARE = 0.5
_ON_MARKET = (
    "SELECT count(*) FROM catalog_properties WHERE organization_id = $1 AND standard_status = ANY($2)"
)
# On-market listings neither loaded from the file nor named by one of its rejected rows.
_MISSING = """c.organization_id = $1 AND c.standard_status = ANY($2)
   AND NOT EXISTS (SELECT 1 FROM catalog_import i WHERE i.listing_id = c.listing_id)
   AND c.listing_id <> ALL($3)"""


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
    #: ListingIds of rejected rows: in the file, so a snapshot never takes them off the market.
    rejected_ids: set[str] = field(default_factory=set)

    @property
    def records(self) -> int:
        """Data rows read from the file: valid, rejected, and earlier rows of a repeated ListingId."""
        return len(self.rows) + len(self.errors) + self.duplicates


@dataclass(frozen=True, slots=True)
class Snapshot:
    """How a snapshot import may take listings missing from its file off the market."""

    #: The largest share of the on-market listings one file may withdraw.
    max_withdraw_share: float = DEFAULT_MAX_WITHDRAW_SHARE
    #: ListingIds the file names in rows that were rejected: never withdrawn.
    rejected_ids: frozenset[str] = frozenset()
    #: Why withdrawing is refused whatever is missing (decided before loading), or None.
    refusal: str | None = None


@dataclass(frozen=True, slots=True)
class SnapshotOutcome:
    """What a snapshot import found missing and whether it took those listings off the market."""

    on_market: int  # listings on the market before the load
    missing: int  # of them, absent from the file
    withdrawn: int  # set to Withdrawn: ``missing``, or 0 when refused
    refusal: str | None = None


@dataclass(frozen=True, slots=True)
class ImportCounts:
    """What loading changed: new rows, changed rows, rows already identical."""

    inserted: int
    updated: int
    unchanged: int
    snapshot: SnapshotOutcome | None = None


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
            listing_id = record.get("ListingId")
            if isinstance(listing_id, str | int) and str(listing_id).strip():
                parsed.rejected_ids.add(str(listing_id).strip())
            continue
        if row.listing_id in by_id:
            parsed.duplicates += 1
            del by_id[row.listing_id]  # keep file order for the survivor
        by_id[row.listing_id] = row
    parsed.rows = list(by_id.values())
    return parsed


def snapshot_policy(
    parsed: ParsedCatalog,
    *,
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE,
    max_withdraw_share: float = DEFAULT_MAX_WITHDRAW_SHARE,
) -> Snapshot:
    """The snapshot rules for a parsed file: withdrawing is refused outright when more than
    ``max_bad_share`` of its rows were rejected (the listings of unreadable rows would look
    missing); otherwise at most ``max_withdraw_share`` of the on-market listings may go."""
    bad, total = len(parsed.errors), parsed.records
    refusal = None
    if bad and bad / total > max_bad_share:
        refusal = (
            f"{bad} of {total} rows were rejected ({bad / total:.1%}, "
            f"more than the {max_bad_share:.1%} allowed)"
        )
    return Snapshot(max_withdraw_share, frozenset(parsed.rejected_ids), refusal)


def _record(organization_id: str, row: CatalogRow) -> tuple[Any, ...]:
    return (
        organization_id, row.listing_id, row.standard_status,
        row.property_sub_type or row.property_type, row.kind, row.unparsed_address, row.city,
        row.postal_code, row.subdivision_name, row.latitude, row.longitude, row.list_price,
        row.close_price, row.close_date, row.bedrooms_total, row.bathrooms_total, row.living_area,
        row.lot_size_square_feet, row.year_built, row.days_on_market, row.garage_spaces,
        row.pool_private_yn, row.view_yn, row.stories_total,
    )  # fmt: skip


async def _withdraw_missing(
    conn: DbConnection, organization_id: str, snapshot: Snapshot, on_market: int
) -> SnapshotOutcome:
    args = (organization_id, list(ON_MARKET_STATUSES), sorted(snapshot.rejected_ids))
    missing: int = await conn.fetchval(f"SELECT count(*) FROM catalog_properties c WHERE {_MISSING}", *args)  # noqa: S608  constant SQL, values as $n placeholders
    refusal = snapshot.refusal
    if refusal is None and missing and missing / on_market > snapshot.max_withdraw_share:
        refusal = (
            f"it would take {missing} of the {on_market} listings on the market off it "
            f"({missing / on_market:.1%}, more than the {snapshot.max_withdraw_share:.1%} allowed)"
        )
    if refusal is not None or not missing:
        return SnapshotOutcome(on_market, missing, 0, refusal)
    status = await conn.execute(
        f"""UPDATE catalog_properties c
               SET standard_status = '{WITHDRAWN}', withdrawn_by_snapshot_at = now(), updated_at = now()
             WHERE {_MISSING}""",  # noqa: S608  constant SQL, values as $n placeholders
        *args,
    )
    return SnapshotOutcome(on_market, missing, int(status.split()[-1]))


async def load_rows(
    conn: DbConnection, organization_id: str, rows: Iterable[CatalogRow], *, snapshot: Snapshot | None = None
) -> ImportCounts:
    """Upsert rows into the organisation's catalog in one transaction (COPY, then one statement).

    With ``snapshot`` the rows are the organisation's complete on-market inventory: after the
    upsert, in the same transaction, the on-market listings they lack are set to Withdrawn
    (closed sales and other off-market rows are never touched), unless the snapshot's rules
    refuse it; the outcome says which."""
    records = [_record(organization_id, row) for row in rows]
    outcome = None
    async with conn.transaction():
        on_market = 0
        if snapshot is not None:
            on_market = await conn.fetchval(_ON_MARKET, organization_id, list(ON_MARKET_STATUSES))
        await conn.execute(
            """CREATE TEMP TABLE catalog_import
                   (LIKE catalog_properties INCLUDING DEFAULTS) ON COMMIT DROP"""
        )
        await conn.copy_records_to_table("catalog_import", records=records, columns=list(_COLUMNS))
        results = await conn.fetch(_UPSERT)
        if snapshot is not None:
            outcome = await _withdraw_missing(conn, organization_id, snapshot, on_market)
    inserted = sum(1 for r in results if r["inserted"])
    updated = len(results) - inserted
    return ImportCounts(
        inserted=inserted, updated=updated, unchanged=len(records) - len(results), snapshot=outcome
    )
