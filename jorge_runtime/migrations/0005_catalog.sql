-- The property catalog: an organisation's MLS listings (active, pending, ...) and closed sales,
-- under RESO Data Dictionary meanings (column = RESO field in snake case). One row per
-- ListingId: a listing that goes Active -> Pending -> Closed is the same row, so a re-import of
-- a newer export updates it in place. `jorge catalog import` writes it; the matcher reads the
-- active listings and the seller analyzer the closed sales.

CREATE TABLE catalog_properties (
    organization_id      text NOT NULL REFERENCES organizations ON DELETE CASCADE,
    listing_id           text NOT NULL,            -- ListingId
    standard_status      text NOT NULL,            -- StandardStatus: Active, Pending, Closed, ...
    property_type        text,                     -- PropertyType / PropertySubType as given
    property_kind        text,                     -- normalised: single_family, condo, townhouse, ...
    unparsed_address     text,                     -- UnparsedAddress
    city                 text,                     -- City
    postal_code          text,                     -- PostalCode
    subdivision_name     text,                     -- SubdivisionName (the neighbourhood)
    latitude             double precision,         -- Latitude
    longitude            double precision,         -- Longitude
    list_price           bigint,                   -- ListPrice
    close_price          bigint,                   -- ClosePrice
    close_date           date,                     -- CloseDate
    bedrooms_total       smallint,                 -- BedroomsTotal
    bathrooms_total      real,                     -- BathroomsTotalDecimal
    living_area          integer,                  -- LivingArea (sq ft)
    lot_size_square_feet bigint,                   -- LotSizeSquareFeet
    year_built           smallint,                 -- YearBuilt
    days_on_market       integer,                  -- DaysOnMarket
    garage_spaces        real,                     -- GarageSpaces
    pool_private_yn      boolean,                  -- PoolPrivateYN
    view_yn              boolean,                  -- ViewYN
    stories_total        smallint,                 -- StoriesTotal
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, listing_id)
);

-- Matcher: active listings of an organisation in a budget window, optionally of some areas.
CREATE INDEX catalog_active_by_price ON catalog_properties (organization_id, list_price)
    WHERE standard_status = 'Active';
CREATE INDEX catalog_active_by_city ON catalog_properties (organization_id, lower(city), list_price)
    WHERE standard_status = 'Active';
CREATE INDEX catalog_active_by_subdivision
    ON catalog_properties (organization_id, lower(subdivision_name), list_price)
    WHERE standard_status = 'Active';

-- Seller analyzer: closed sales of a market area (city or postal code), newest first, and
-- active listings counted per city for months of supply.
CREATE INDEX catalog_closed_by_city ON catalog_properties (organization_id, lower(city), close_date DESC)
    WHERE standard_status = 'Closed';
CREATE INDEX catalog_closed_by_postal_code
    ON catalog_properties (organization_id, postal_code, close_date DESC)
    WHERE standard_status = 'Closed';
-- Finding the subject home by its street address (to fill in what the seller did not give).
CREATE INDEX catalog_by_street
    ON catalog_properties (organization_id, lower(split_part(unparsed_address, ',', 1)));

-- A match session opened by the matcher for a qualified buyer lead names its qualification,
-- so the lead's qualification can show the recommended properties.
ALTER TABLE match_sessions ADD COLUMN qualification_id text;
CREATE INDEX match_sessions_by_qualification ON match_sessions (organization_id, qualification_id)
    WHERE qualification_id IS NOT NULL;
