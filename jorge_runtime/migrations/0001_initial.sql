-- Tenants, their API keys, leads and qualifications, and the consumers' idempotency records.

CREATE TABLE organizations (
    organization_id text PRIMARY KEY,
    name            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_id          text PRIMARY KEY,
    organization_id text NOT NULL REFERENCES organizations ON DELETE CASCADE,
    name            text NOT NULL,
    key_prefix      text NOT NULL,            -- first characters, to recognise a key in lists
    key_hash        bytea NOT NULL UNIQUE,    -- sha256 of the whole key; keys are random, so no salt is needed
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);
CREATE INDEX api_keys_by_organization ON api_keys (organization_id);

CREATE TABLE leads (
    organization_id  text NOT NULL REFERENCES organizations ON DELETE CASCADE,
    lead_id          text NOT NULL,
    name             text,
    phone            text,
    email            text,
    message          text NOT NULL DEFAULT '',
    property_address text,
    source           text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, lead_id)
);

CREATE TABLE qualifications (
    qualification_id text PRIMARY KEY,
    organization_id  text NOT NULL,
    lead_id          text NOT NULL,
    status           text NOT NULL CHECK (status IN ('in_progress', 'completed', 'failed')),
    engine           text,
    result           jsonb,
    failure_reason   text,
    correlation_id   text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    expires_at       timestamptz NOT NULL,
    FOREIGN KEY (organization_id, lead_id) REFERENCES leads ON DELETE CASCADE
);
-- At most one open qualification per lead: the database, not a read-then-write, answers 409.
CREATE UNIQUE INDEX qualifications_one_open_per_lead
    ON qualifications (organization_id, lead_id) WHERE status = 'in_progress';
CREATE INDEX qualifications_latest_per_lead
    ON qualifications (organization_id, lead_id, created_at DESC);

-- Inbox: which events each consumer has already handled.
CREATE TABLE processed_events (
    consumer     text NOT NULL,
    event_id     uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Outbox: what a consumer must publish for a handled event; kept until published, so a
-- crash between commit and publish is repaired by the redelivery, with the same event id.
CREATE TABLE outbox (
    message_id      uuid PRIMARY KEY,
    consumer        text NOT NULL,
    source_event_id uuid NOT NULL,
    topic           text NOT NULL,
    message_key     text,
    headers         jsonb NOT NULL,
    body            bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz
);
CREATE INDEX outbox_by_source ON outbox (consumer, source_event_id);
CREATE INDEX outbox_unpublished ON outbox (created_at) WHERE published_at IS NULL;
