-- Follow-up days were single precision (real): the API's float came back rounded (1.1 read as
-- 1.100000023841858), and a tiny positive skip_late_after_days was stored as 0, which the API
-- then could not return (it must be > 0). Double precision keeps what the caller sent.
ALTER TABLE follow_up_settings ALTER COLUMN skip_late_after_days TYPE double precision;
ALTER TABLE follow_up_steps ALTER COLUMN offset_days TYPE double precision;
