"""The property catalog: one MLS row under RESO Data Dictionary names, and the record workers use.

``CatalogRow`` validates one row of an import file (CSV or JSON Lines whose columns are RESO
field names such as ``ListingId`` or ``BathroomsTotalDecimal``); ``CatalogProperty`` is the
same home as the matcher and the seller analyzer read it from the database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: RESO StandardStatus values, and the ones the matcher offers to buyers.
STANDARD_STATUSES = (
    "Active",
    "Active Under Contract",
    "Coming Soon",
    "Pending",
    "Closed",
    "Canceled",
    "Expired",
    "Withdrawn",
    "Hold",
    "Delete",
    "Incomplete",
)
ACTIVE = "Active"
CLOSED = "Closed"
#: Listings on the market or under contract: what an MLS export of the active and pending
#: inventory lists. A snapshot import takes the ones missing from its file off the market.
ON_MARKET_STATUSES = (ACTIVE, "Active Under Contract", "Coming Soon", "Pending")
#: The status a snapshot import gives a listing that left the market (RESO has no "gone from
#: the feed" value; withdrawn, expired and canceled listings all look the same in a snapshot).
WITHDRAWN = "Withdrawn"

PropertyKind = Literal["single_family", "condo", "townhouse", "multi_family", "manufactured", "land"]

# RESO PropertyType / PropertySubType values (and common spellings) to the API's property types.
_KINDS: dict[str, PropertyKind] = {
    "singlefamilyresidence": "single_family",
    "singlefamily": "single_family",
    "residential": "single_family",
    "detached": "single_family",
    "condominium": "condo",
    "condo": "condo",
    "stockcooperative": "condo",
    "townhouse": "townhouse",
    "townhome": "townhouse",
    "residentialincome": "multi_family",
    "multifamily": "multi_family",
    "singlefamilyhome": "single_family",
    "duplex": "multi_family",
    "triplex": "multi_family",
    "quadruplex": "multi_family",
    "manufacturedhome": "manufactured",
    "manufacturedonland": "manufactured",
    "mobilehome": "manufactured",
    "manufactured": "manufactured",
    "land": "land",
    "unimprovedland": "land",
}

#: The RESO columns the importer reads; anything else in a file is ignored (with one note).
KNOWN_COLUMNS = (
    "ListingId",
    "StandardStatus",
    "PropertyType",
    "PropertySubType",
    "UnparsedAddress",
    "City",
    "PostalCode",
    "SubdivisionName",
    "Latitude",
    "Longitude",
    "ListPrice",
    "ClosePrice",
    "CloseDate",
    "BedroomsTotal",
    "BathroomsTotalDecimal",
    "LivingArea",
    "LotSizeSquareFeet",
    "YearBuilt",
    "DaysOnMarket",
    "GarageSpaces",
    "PoolPrivateYN",
    "ViewYN",
    "StoriesTotal",
)


def property_kind(value: str | None) -> PropertyKind | None:
    """The API's property type for a RESO PropertyType/PropertySubType value, or None if unknown."""
    if not value:
        return None
    return _KINDS.get("".join(ch for ch in value.lower() if ch.isalnum()))


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine) in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, a)))


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and value.strip() == "" else value


class CatalogRow(BaseModel):
    """One validated row of an MLS export (RESO names); blank cells count as missing."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore", populate_by_name=True)

    listing_id: str = Field(alias="ListingId", min_length=1, max_length=64)
    standard_status: str = Field(alias="StandardStatus")
    property_type: str | None = Field(default=None, alias="PropertyType", max_length=100)
    property_sub_type: str | None = Field(default=None, alias="PropertySubType", max_length=100)
    unparsed_address: str | None = Field(default=None, alias="UnparsedAddress", max_length=300)
    city: str | None = Field(default=None, alias="City", max_length=100)
    postal_code: str | None = Field(default=None, alias="PostalCode", max_length=12)
    subdivision_name: str | None = Field(default=None, alias="SubdivisionName", max_length=100)
    latitude: float | None = Field(default=None, alias="Latitude", ge=-90, le=90)
    longitude: float | None = Field(default=None, alias="Longitude", ge=-180, le=180)
    list_price: int | None = Field(default=None, alias="ListPrice", gt=0, le=1_000_000_000)
    close_price: int | None = Field(default=None, alias="ClosePrice", gt=0, le=1_000_000_000)
    close_date: date | None = Field(default=None, alias="CloseDate")
    bedrooms_total: int | None = Field(default=None, alias="BedroomsTotal", ge=0, le=30)
    bathrooms_total: float | None = Field(default=None, alias="BathroomsTotalDecimal", ge=0, le=30)
    living_area: int | None = Field(default=None, alias="LivingArea", gt=0, le=100_000)
    lot_size_square_feet: int | None = Field(default=None, alias="LotSizeSquareFeet", ge=0, le=1_000_000_000)
    year_built: int | None = Field(default=None, alias="YearBuilt", ge=1600, le=2100)
    days_on_market: int | None = Field(default=None, alias="DaysOnMarket", ge=0, le=10_000)
    garage_spaces: float | None = Field(default=None, alias="GarageSpaces", ge=0, le=50)
    pool_private_yn: bool | None = Field(default=None, alias="PoolPrivateYN")
    view_yn: bool | None = Field(default=None, alias="ViewYN")
    stories_total: int | None = Field(default=None, alias="StoriesTotal", ge=0, le=200)

    @model_validator(mode="before")
    @classmethod
    def _blanks(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: _blank_to_none(value) for key, value in data.items()}
        return data

    @field_validator("list_price", "close_price", "living_area", "lot_size_square_feet", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        # MLS exports often write integers as "725000.00".
        if isinstance(value, str):
            try:
                number = float(value.replace(",", ""))
            except ValueError:
                return value
            return round(number) if number == number else value
        if isinstance(value, float):
            return round(value)
        return value

    @field_validator("standard_status")
    @classmethod
    def _known_status(cls, value: str) -> str:
        by_key = {status.lower().replace(" ", ""): status for status in STANDARD_STATUSES}
        status = by_key.get(value.lower().replace(" ", "").replace("_", ""))
        if status is None:
            raise ValueError(f"StandardStatus must be one of {', '.join(STANDARD_STATUSES)}")
        return status

    @model_validator(mode="after")
    def _consistent(self) -> CatalogRow:
        if self.standard_status == CLOSED and (self.close_price is None or self.close_date is None):
            raise ValueError("a Closed row needs ClosePrice and CloseDate")
        if self.standard_status != CLOSED and self.list_price is None:
            raise ValueError(f"a {self.standard_status} row needs ListPrice")
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give Latitude and Longitude together, or neither")
        if self.bedrooms_total and self.living_area and self.living_area / self.bedrooms_total < 70:
            raise ValueError("LivingArea is too small for BedroomsTotal (under 70 sq ft per bedroom)")
        return self

    @property
    def kind(self) -> PropertyKind | None:
        """The API's property type: from PropertySubType when it is known, else PropertyType."""
        return property_kind(self.property_sub_type) or property_kind(self.property_type)

    def to_property(self) -> CatalogProperty:
        """The row as the workers read it back from the database."""
        return CatalogProperty(
            listing_id=self.listing_id,
            standard_status=self.standard_status,
            address=self.unparsed_address,
            city=self.city,
            postal_code=self.postal_code,
            subdivision=self.subdivision_name,
            latitude=self.latitude,
            longitude=self.longitude,
            list_price=self.list_price,
            close_price=self.close_price,
            close_date=self.close_date,
            bedrooms=self.bedrooms_total,
            bathrooms=self.bathrooms_total,
            living_area=self.living_area,
            lot_size_sqft=self.lot_size_square_feet,
            year_built=self.year_built,
            days_on_market=self.days_on_market,
            property_kind=self.kind,
            garage_spaces=self.garage_spaces,
            pool=self.pool_private_yn,
            view=self.view_yn,
            stories=self.stories_total,
        )


@dataclass(frozen=True, slots=True)
class CatalogProperty:
    """A home of the catalog as the workers read it (listing or closed sale)."""

    listing_id: str
    standard_status: str
    address: str | None
    city: str | None
    postal_code: str | None
    subdivision: str | None
    latitude: float | None
    longitude: float | None
    list_price: int | None
    close_price: int | None
    close_date: date | None
    bedrooms: int | None
    bathrooms: float | None
    living_area: int | None
    lot_size_sqft: int | None
    year_built: int | None
    days_on_market: int | None
    property_kind: str | None = None
    garage_spaces: float | None = None
    pool: bool | None = None
    view: bool | None = None
    stories: int | None = None

    @property
    def price(self) -> int:
        """The sale price of a closed sale, else the list price (0 if neither is known)."""
        return self.close_price or self.list_price or 0
