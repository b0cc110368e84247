-- crm_sync: GHL tokens encrypted at rest (Fernet, keys from CRM_CREDENTIALS_KEY; see
-- services/crm_sync/credential_cipher.py). The key never reaches the database, so SQL cannot
-- encrypt the rows stored before this: they keep their plain `token`, crm_sync still reads it
-- (with a warning), and `jorge crm credentials rotate` (or `set`) encrypts it and clears it.
ALTER TABLE crm_credentials ALTER COLUMN token DROP NOT NULL;
ALTER TABLE crm_credentials ADD COLUMN token_encrypted bytea;
-- Exactly one form of the token per row: a write that encrypts always clears the plain one.
ALTER TABLE crm_credentials
    ADD CONSTRAINT crm_credentials_one_token CHECK ((token IS NULL) <> (token_encrypted IS NULL));
