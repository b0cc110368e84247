-- Retention (jorge purge, and crm_sync every RETENTION_INTERVAL_SECONDS): indexes on the age of
-- each purged row, so a batched delete reads only what it deletes, and the last periodic run.
-- Built without CONCURRENTLY (migrations run in a transaction): on a large existing database,
-- writes to these tables wait while each index builds; IF NOT EXISTS lets an operator build them
-- CONCURRENTLY beforehand (see docs/OPERATIONS.md).

CREATE INDEX IF NOT EXISTS processed_events_by_age ON processed_events (processed_at);
CREATE INDEX IF NOT EXISTS outbox_published_by_age ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Finished deliveries by last change; a pending one is never purged.
CREATE INDEX IF NOT EXISTS webhook_deliveries_finished_by_age ON webhook_deliveries (updated_at) WHERE status <> 'pending';
CREATE INDEX IF NOT EXISTS webhook_messages_by_created ON webhook_messages (created_at);

CREATE INDEX IF NOT EXISTS crm_sync_steps_by_age ON crm_sync_steps (updated_at);
CREATE INDEX IF NOT EXISTS crm_dead_letters_replayed_by_age ON crm_dead_letters (replayed_at) WHERE replayed_at IS NOT NULL;
-- Steps of an event with an open or recently replayed dead letter are kept: found by event id.
CREATE INDEX IF NOT EXISTS crm_dead_letters_by_event ON crm_dead_letters (event_id);

-- The periodic purge's last run (one row): replicas skip their run if another ran within the interval.
CREATE TABLE retention_runs (
    name        text PRIMARY KEY,
    finished_at timestamptz NOT NULL,
    deleted     jsonb NOT NULL              -- rows deleted per table
);
