"""A GoHighLevel API v2 sandbox: the calls crm_sync makes, with GHL's documented behaviour."""
