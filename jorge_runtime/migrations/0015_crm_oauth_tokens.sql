-- crm_sync: OAuth access tokens of a GHL Marketplace app, next to Private Integration Tokens.
-- An 'oauth' row keeps its access token in token_encrypted (expiring at access_expires_at) and
-- the refresh token, rotated at every refresh, encrypted in refresh_token_encrypted (same
-- Fernet keys, CRM_CREDENTIALS_KEY). A refresh GHL refused is recorded (refresh_failed_at,
-- refresh_error: GHL's message, never a token) until the credentials are set again.
ALTER TABLE crm_credentials ADD COLUMN token_kind text NOT NULL DEFAULT 'private'
    CHECK (token_kind IN ('private', 'oauth'));
ALTER TABLE crm_credentials ADD COLUMN refresh_token_encrypted bytea;
ALTER TABLE crm_credentials ADD COLUMN access_expires_at timestamptz;
ALTER TABLE crm_credentials ADD COLUMN refresh_failed_at timestamptz;
ALTER TABLE crm_credentials ADD COLUMN refresh_error text;
ALTER TABLE crm_credentials ADD CONSTRAINT crm_credentials_oauth_refreshable
    CHECK (token_kind = 'private' OR (refresh_token_encrypted IS NOT NULL AND access_expires_at IS NOT NULL));
