-- crm_sync: events of organisations that have no GHL credentials yet (no crm_credentials row,
-- and not the one organisation GHL_ORGANIZATION gives the global GHL_TOKEN to). They are kept
-- here, not dropped; once the organisation's credentials exist crm_sync republishes them to its
-- first delay topic and deletes them. jorge_crm_events_waiting_for_credentials counts them.
CREATE TABLE crm_waiting_events (
    event_id        uuid PRIMARY KEY,
    organization_id text NOT NULL,
    event_type      text NOT NULL,
    lane            text NOT NULL,
    message_key     text,
    headers         jsonb NOT NULL DEFAULT '{}'::jsonb,
    body            bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX crm_waiting_events_by_organization ON crm_waiting_events (organization_id, created_at);
