-- Every consumer's dead letters land in crm_dead_letters (the table crm_sync already used), so
-- `jorge dlq list|replay|discard` works on all of them. A row says which consumer gave up on it
-- and the topic it came from: replay republishes there, with the same key. crm_sync's lane rows
-- keep their lane (replayed through the retry topics); other consumers' rows have none.
ALTER TABLE crm_dead_letters
    ADD COLUMN consumer text NOT NULL DEFAULT 'crm_sync',
    ADD COLUMN origin_topic text,
    ALTER COLUMN lane DROP NOT NULL;

-- One open row per event and consumer: lead.qualified is read by the matcher and by crm_sync,
-- and each may dead-letter the same event. Rebuilt in this transaction (crm_sync's insert names
-- no conflict target, so it keeps working).
DROP INDEX crm_dead_letters_open_event;
CREATE UNIQUE INDEX crm_dead_letters_open_event ON crm_dead_letters (consumer, event_id)
    WHERE replayed_at IS NULL AND discarded_at IS NULL;
CREATE INDEX crm_dead_letters_open_by_consumer ON crm_dead_letters (consumer, id)
    WHERE replayed_at IS NULL AND discarded_at IS NULL;

-- How often a message failed while every dependency was up (jorge_runtime/attempts.py). Kept
-- here, not in a worker's memory, so a restart or a rebalance does not give a poison message
-- a fresh set of tries. A row goes when its message succeeds or is dead-lettered; a failure
-- also deletes its partition's older rows (their offsets were committed before it).
CREATE TABLE consumer_attempts (
    consumer    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    "offset"    bigint NOT NULL,
    attempts    integer NOT NULL,
    last_error  text NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition, "offset")
);
