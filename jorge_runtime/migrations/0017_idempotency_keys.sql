-- Idempotency-Key on the API's POSTs: the first answer to a key, replayed to every retry with
-- the same request; kept until expires_at (IDEMPOTENCY_KEY_TTL_HOURS). A row with no status is
-- in progress under a lease (locked_until); committed_at is set in the transaction that accepted
-- the request, so a retry after a crash that lost the answer is never executed a second time.
CREATE TABLE idempotency_keys (
    organization_id text NOT NULL REFERENCES organizations ON DELETE CASCADE,
    idempotency_key text NOT NULL,
    fingerprint     bytea NOT NULL,           -- sha256 of method, path and canonical JSON body
    status          smallint,
    response        bytea,
    response_type   text,
    secret_withheld boolean NOT NULL DEFAULT false,  -- the answer held a signing secret: not stored
    locked_until    timestamptz NOT NULL,
    committed_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, idempotency_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
