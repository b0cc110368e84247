-- Webhook delivery engine (crm_sync): claims with a lease, so any replica can pick up the work
-- of one that died mid-attempt, and an exact per-endpoint limit on requests in flight.

ALTER TABLE webhook_deliveries
    -- Set while an attempt is in flight: who claimed it, and until when the claim holds. A claim
    -- past its expiry belongs to a dead process; the next claimer records that attempt as
    -- interrupted and tries again (same webhook-id).
    ADD COLUMN lease_token      uuid,
    ADD COLUMN lease_expires_at timestamptz,
    ADD COLUMN claimed_at       timestamptz;

-- Requests in flight to one endpoint (counted against its max_concurrency at every claim).
CREATE INDEX webhook_deliveries_in_flight
    ON webhook_deliveries (endpoint_id, lease_expires_at) WHERE lease_expires_at IS NOT NULL;

-- One endpoint's due deliveries, oldest first: the claim walks this per endpoint, so a large
-- backlog on one endpoint costs nothing to the others.
CREATE INDEX webhook_deliveries_due_by_endpoint
    ON webhook_deliveries (endpoint_id, next_attempt_at) WHERE status = 'pending';
