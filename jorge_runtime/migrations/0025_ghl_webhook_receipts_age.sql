-- The retention purge finds old GHL webhook receipts by age (jorge_runtime/retention/purge.py).
CREATE INDEX ghl_webhook_receipts_received_at ON ghl_webhook_receipts (received_at);
