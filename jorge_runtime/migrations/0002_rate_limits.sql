-- Per-organisation overrides of the default rate limits and quotas, e.g. {"key_per_minute": 300}.
ALTER TABLE organizations ADD COLUMN rate_limits jsonb NOT NULL DEFAULT '{}'::jsonb;
