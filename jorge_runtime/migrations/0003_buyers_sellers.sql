-- Buyers' preferences and match sessions, sellers' analyses and consultation requests.
-- The gateway writes requests (status pending/requested); the matcher and seller_analyzer
-- write results, then call jorge_runtime.results.notify_result in the same transaction.

CREATE TABLE buyer_preferences (
    organization_id text NOT NULL REFERENCES organizations ON DELETE CASCADE,
    buyer_id        text NOT NULL,
    document        jsonb NOT NULL,           -- schemas.buyers.BuyerPreferences, normalised
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, buyer_id)
);

-- No foreign key to buyer_preferences: a worker may store a result for a session whose
-- gateway transaction never committed (Kafka acknowledged after the gateway gave up).
CREATE TABLE match_sessions (
    id              text PRIMARY KEY,         -- match-…
    organization_id text NOT NULL REFERENCES organizations ON DELETE CASCADE,
    buyer_id        text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed', 'failed')),
    request         jsonb NOT NULL,           -- schemas.buyers.BuyerMatchRequestedPayload
    result          jsonb,                    -- schemas.buyers.MatchResults once completed
    failure_reason  text,
    correlation_id  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz
);
-- The API reads sessions by id; workers and support read a buyer's sessions, newest first.
CREATE INDEX match_sessions_by_buyer ON match_sessions (organization_id, buyer_id, created_at DESC);

CREATE TABLE seller_analyses (
    id              text PRIMARY KEY,         -- cma-…
    organization_id text NOT NULL REFERENCES organizations ON DELETE CASCADE,
    seller_id       text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed', 'failed')),
    request         jsonb NOT NULL,           -- schemas.sellers.SellerAnalysisRequestedPayload
    result          jsonb,                    -- schemas.sellers.SellerAnalysisResult once completed
    failure_reason  text,
    correlation_id  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz
);
-- The API reads analyses by id; workers and support read a seller's, newest first.
CREATE INDEX seller_analyses_by_seller ON seller_analyses (organization_id, seller_id, created_at DESC);

CREATE TABLE seller_consultations (
    id              text PRIMARY KEY,         -- consult-…
    organization_id text NOT NULL REFERENCES organizations ON DELETE CASCADE,
    seller_id       text NOT NULL,
    status          text NOT NULL DEFAULT 'requested'
                    CHECK (status IN ('requested', 'scheduled', 'cancelled', 'completed')),
    request         jsonb NOT NULL,           -- schemas.sellers.ConsultationRequest, phone in E.164
    correlation_id  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- crm_sync and support read a seller's consultation requests, newest first.
CREATE INDEX seller_consultations_by_seller
    ON seller_consultations (organization_id, seller_id, created_at DESC);
