-- `jorge catalog import FILE --snapshot`: the file is the organisation's complete on-market
-- inventory (Active, Active Under Contract, Coming Soon, Pending), so a listing it lacks has left
-- the market (withdrawn, expired or canceled: MLS exports simply drop it). The import sets such a
-- listing's StandardStatus to Withdrawn, the closest RESO value, and records here when it was
-- found missing; the row is kept (its history, and a later export may list it again). Any import
-- that lists it again sets its status from the file and clears this column. StandardStatus has
-- no check constraint (the importer validates it against the RESO values), so none changes.

ALTER TABLE catalog_properties ADD COLUMN withdrawn_by_snapshot_at timestamptz;
