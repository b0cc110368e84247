-- Dead letters an operator closed without replaying them (`jorge dlq discard`): a lead the sales
-- team deleted, a test organisation. A row is open, replayed or discarded. A discarded one is
-- no longer open: it is never replayed, the same event can be dead-lettered again if it is sent
-- again, and retention purges it like a replayed one.

ALTER TABLE crm_dead_letters
    ADD COLUMN discarded_at timestamptz,
    ADD COLUMN discard_note text,               -- the operator's reason, required with discarded_at
    ADD CONSTRAINT crm_dead_letters_closed_once CHECK (replayed_at IS NULL OR discarded_at IS NULL),
    ADD CONSTRAINT crm_dead_letters_discard_noted CHECK ((discarded_at IS NULL) = (discard_note IS NULL));

-- One open row per event, where open now also means not discarded. Dropped and rebuilt in this
-- migration's transaction, so no second open row can slip in between.
-- Upgrade crm_sync right after this migration: an older crm_sync's insert names the previous
-- index (ON CONFLICT ... WHERE replayed_at IS NULL) and fails until it is replaced.
DROP INDEX crm_dead_letters_open_event;
CREATE UNIQUE INDEX crm_dead_letters_open_event ON crm_dead_letters (event_id)
    WHERE replayed_at IS NULL AND discarded_at IS NULL;

-- Retention measures a closed row's age from its replay or its discard (retention_purge.py).
DROP INDEX IF EXISTS crm_dead_letters_replayed_by_age;
CREATE INDEX IF NOT EXISTS crm_dead_letters_closed_by_age
    ON crm_dead_letters ((COALESCE(replayed_at, discarded_at)))
    WHERE COALESCE(replayed_at, discarded_at) IS NOT NULL;
