-- Webhook signing secrets encrypted at rest, like GHL tokens (Fernet, keys from
-- CRM_CREDENTIALS_KEY; jorge_runtime/credential_cipher.py, each bound to its endpoint). The key
-- never reaches the database, so SQL cannot encrypt the secrets stored before this: crm_sync
-- encrypts them when it starts (or `jorge webhooks encrypt-secrets`) and clears the plain
-- columns; deliveries are signed only with encrypted secrets.
ALTER TABLE webhook_endpoints ADD COLUMN secret_encrypted bytea;
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret_encrypted bytea;
-- A live endpoint has its secret in one form or the other (plain only until it is encrypted).
DO $$
DECLARE name text;
BEGIN
    SELECT conname INTO name FROM pg_constraint
     WHERE conrelid = 'webhook_endpoints'::regclass AND contype = 'c'
       AND pg_get_constraintdef(oid) LIKE '%secret IS NOT NULL%';
    IF name IS NOT NULL THEN
        EXECUTE format('ALTER TABLE webhook_endpoints DROP CONSTRAINT %I', name);
    END IF;
END $$;
ALTER TABLE webhook_endpoints ADD CONSTRAINT webhook_endpoints_secret_kept
    CHECK (secret IS NOT NULL OR secret_encrypted IS NOT NULL OR status = 'deleted');
-- New plain-text secrets are refused; rows from before keep theirs until encrypted (NOT VALID
-- skips checking them, and the UPDATE that encrypts one clears its plain columns).
ALTER TABLE webhook_endpoints ADD CONSTRAINT webhook_endpoints_no_new_plain_secret
    CHECK (secret IS NULL AND previous_secret IS NULL) NOT VALID;
