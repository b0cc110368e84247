-- Follow-up cadences (crm_sync, services/crm_sync/follow_ups/): the schedule lives here, not in a
-- cron. Any crm_sync replica claims due steps with FOR UPDATE SKIP LOCKED and a lease, so a
-- step is worked on by one replica at a time and one that died mid-step is picked up again.

-- An organisation's cadence; without a row the settings' default (FOLLOW_UP_CADENCE_DAYS) is used.
CREATE TABLE follow_up_settings (
    organization_id     text PRIMARY KEY REFERENCES organizations ON DELETE CASCADE,
    -- {"default": [3, 7, 30], "hot": [1, 3, 7]}: days after qualification, per temperature.
    cadence_days        jsonb NOT NULL,
    time_zone           text NOT NULL DEFAULT 'UTC',
    quiet_start_hour    smallint CHECK (quiet_start_hour BETWEEN 0 AND 23),   -- null: no quiet hours
    quiet_end_hour      smallint CHECK (quiet_end_hour BETWEEN 0 AND 23),
    workflow_id         text,          -- GHL workflow each step adds the contact to, if any
    skip_late_after_days real NOT NULL DEFAULT 1,  -- a step this late (platform down) is skipped
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- One plan per lead: active, paused, stopped (the lead engaged), cancelled or completed.
CREATE TABLE follow_up_plans (
    organization_id text NOT NULL REFERENCES organizations ON DELETE CASCADE,
    lead_id         text NOT NULL,
    temperature     text NOT NULL,
    status          text NOT NULL CHECK (status IN ('active', 'paused', 'stopped', 'cancelled', 'completed')),
    stop_reason     text,
    source_event_id uuid NOT NULL,     -- the lead.qualified event that started it
    -- The deployment's KAFKA_TOPIC_PREFIX: replicas claim only their environment's steps, as
    -- they read only its topics (tests and environments sharing a database stay apart).
    topic_prefix    text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, lead_id)
);

-- One row per step. task_id is set once GHL created the task ('started' before the call: a
-- step found started is looked up in GHL by its marker before a second task is created).
CREATE TABLE follow_up_steps (
    id               uuid PRIMARY KEY,
    organization_id  text NOT NULL,
    lead_id          text NOT NULL,
    step_number      smallint NOT NULL,
    offset_days      real NOT NULL,
    due_at           timestamptz NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'done', 'skipped', 'cancelled', 'failed')),
    skip_reason      text,
    task_started     boolean NOT NULL DEFAULT false,
    task_id          text,
    workflow_added   boolean NOT NULL DEFAULT false,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    lease_expires_at timestamptz,
    last_error       text,
    done_at          timestamptz,
    UNIQUE (organization_id, lead_id, step_number),
    FOREIGN KEY (organization_id, lead_id) REFERENCES follow_up_plans ON DELETE CASCADE
);
-- The claim walks pending steps by when they may next run.
CREATE INDEX follow_up_steps_due ON follow_up_steps (next_attempt_at) WHERE status = 'pending';

-- GHL webhooks the gateway accepted, by GHL's webhookId: a replayed one is refused.
CREATE TABLE ghl_webhook_receipts (
    webhook_id  text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
