-- Webhook subscriptions (written by the gateway) and their messages, deliveries and attempts
-- (written by the delivery engine in crm_sync; the gateway creates test messages and
-- requests redeliveries).

CREATE TABLE webhook_endpoints (
    id                         text PRIMARY KEY,                 -- we_…
    organization_id            text NOT NULL REFERENCES organizations ON DELETE CASCADE,
    url                        text NOT NULL,
    events                     text[] NOT NULL,
    description                text,
    status                     text NOT NULL DEFAULT 'active'
                               CHECK (status IN ('active', 'disabled', 'deleted')),
    disabled_reason            text,
    -- whsec_…; cleared when the endpoint is deleted, the only state in which it may be null.
    secret                     text,
    previous_secret            text,                             -- still signs until the expiry
    previous_secret_expires_at timestamptz,
    max_concurrency            integer NOT NULL DEFAULT 10 CHECK (max_concurrency BETWEEN 1 AND 50),
    failing_since              timestamptz,                      -- start of the current failure run
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    CHECK (secret IS NOT NULL OR status = 'deleted'),
    CHECK (cardinality(events) > 0)
);
-- The API lists an organisation's endpoints newest first; deleted ones are never listed.
CREATE INDEX webhook_endpoints_by_organization
    ON webhook_endpoints (organization_id, created_at DESC, id DESC) WHERE status <> 'deleted';
-- The delivery engine fans an event out to the organisation's active subscribers.
CREATE INDEX webhook_endpoints_active
    ON webhook_endpoints (organization_id) WHERE status = 'active';

-- One event as sent to subscribers: id is the webhook-id header, payload is {event, timestamp, data}.
CREATE TABLE webhook_messages (
    id              text PRIMARY KEY,                            -- msg_…
    organization_id text NOT NULL REFERENCES organizations ON DELETE CASCADE,
    event_type      text NOT NULL,
    payload         jsonb NOT NULL,
    -- The Kafka event it was made from (null for webhook.test): one message per event.
    source_event_id uuid UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_messages_by_age ON webhook_messages (organization_id, created_at);

CREATE TABLE webhook_deliveries (
    id                 text PRIMARY KEY,                         -- wd_…
    endpoint_id        text NOT NULL REFERENCES webhook_endpoints ON DELETE CASCADE,
    message_id         text NOT NULL REFERENCES webhook_messages ON DELETE CASCADE,
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts           integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at    timestamptz,
    -- Trigger to record on the next attempt: the gateway sets manual (test, redeliver), the
    -- engine resets it to scheduled once that attempt is made.
    next_trigger       text NOT NULL DEFAULT 'scheduled' CHECK (next_trigger IN ('scheduled', 'manual')),
    last_response_code integer,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, message_id)
);
CREATE INDEX webhook_deliveries_by_endpoint
    ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_by_endpoint_status
    ON webhook_deliveries (endpoint_id, status, created_at DESC, id DESC);
-- The engine picks due work: pending deliveries whose time has come, oldest first.
CREATE INDEX webhook_deliveries_due
    ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_message ON webhook_deliveries (message_id);

CREATE TABLE webhook_attempts (
    id              text PRIMARY KEY,                            -- wa_…
    delivery_id     text NOT NULL REFERENCES webhook_deliveries ON DELETE CASCADE,
    attempt_number  integer NOT NULL CHECK (attempt_number >= 1),
    trigger         text NOT NULL CHECK (trigger IN ('scheduled', 'manual')),
    status          text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    url             text NOT NULL,                               -- the endpoint's URL at the time
    started_at      timestamptz NOT NULL,
    duration_ms     integer CHECK (duration_ms >= 0),
    response_status integer,
    response_body   text CHECK (octet_length(response_body) <= 20480),   -- capped at 20 KB
    error           text,                                        -- no response: timeout, refused, …
    UNIQUE (delivery_id, attempt_number)
);
