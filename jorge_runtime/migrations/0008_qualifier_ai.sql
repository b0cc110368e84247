-- Claude qualifier (issue 8): which model was called, what it cost, and why the rules engine
-- answered instead when it did. Null for qualifications the rules engine made alone.
ALTER TABLE qualifications
    ADD COLUMN model              text,
    ADD COLUMN input_tokens       integer CHECK (input_tokens >= 0),
    ADD COLUMN output_tokens      integer CHECK (output_tokens >= 0),
    ADD COLUMN cache_read_tokens  integer CHECK (cache_read_tokens >= 0),
    ADD COLUMN cache_write_tokens integer CHECK (cache_write_tokens >= 0),
    ADD COLUMN cost_usd           numeric(12, 6) CHECK (cost_usd >= 0),
    ADD COLUMN fallback_reason    text;

-- Message Batches submitted by `jorge backfill`: a crashed backfill resumes from its batch id.
CREATE TABLE qualifier_batches (
    batch_id        text PRIMARY KEY,
    organization_id text,
    model           text NOT NULL,
    request_count   integer NOT NULL CHECK (request_count >= 0),
    -- custom_id -> [organization_id, lead_id]: what each result belongs to
    items           jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'in_progress' CHECK (status IN ('in_progress', 'ended')),
    stored_count    integer NOT NULL DEFAULT 0,
    submitted_at    timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz
);
