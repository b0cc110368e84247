-- crm_sync: GoHighLevel credentials per organisation, our lead -> GHL contact mapping, the
-- progress of each event's CRM writes, and CRM writes that failed for good.

-- An organisation's own GHL location and token; without a row the settings' default is used.
-- The token is read only by crm_sync and never logged or returned by any API.
CREATE TABLE crm_credentials (
    organization_id text PRIMARY KEY REFERENCES organizations ON DELETE CASCADE,
    location_id     text NOT NULL,
    token           text NOT NULL,
    pipeline_id     text,                     -- overrides GHL_PIPELINE_ID
    stage_id        text,                     -- overrides GHL_PIPELINE_STAGE_ID
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Our person (lead, buyer or seller id) -> the GHL contact created for it, per location: a
-- retry, a redelivery or a 422 that still created never makes a second contact.
CREATE TABLE crm_contacts (
    organization_id text NOT NULL REFERENCES organizations ON DELETE CASCADE,
    location_id     text NOT NULL,
    person_id       text NOT NULL,
    contact_id      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, location_id, person_id)
);

-- One row per write of an event (tags, note, opportunity): 'started' before the call, 'done'
-- after. A 'started' row seen later means the outcome is unknown and is checked in GHL first.
CREATE TABLE crm_sync_steps (
    event_id   uuid NOT NULL,
    step       text NOT NULL,
    status     text NOT NULL CHECK (status IN ('started', 'done')),
    result     text,                          -- e.g. the note or opportunity id
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, step)
);

-- Permanent failures (400/403/404/422, 401 credentials, retries exhausted), replayable with
-- `jorge dlq replay`. The body is the event as it arrived.
CREATE TABLE crm_dead_letters (
    id              bigserial PRIMARY KEY,
    organization_id text,
    event_id        uuid,
    event_type      text,
    message_key     text,
    lane            text NOT NULL,
    reason          text NOT NULL,            -- a code: ghl_unauthorized, ghl_rejected, retries_exhausted...
    detail          text NOT NULL DEFAULT '',
    attempts        integer NOT NULL,
    headers         jsonb NOT NULL,
    body            bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    replayed_at     timestamptz,
    replay_count    integer NOT NULL DEFAULT 0
);
-- A redelivered failure does not add a second open row for the same event.
CREATE UNIQUE INDEX crm_dead_letters_open_event ON crm_dead_letters (event_id) WHERE replayed_at IS NULL;
