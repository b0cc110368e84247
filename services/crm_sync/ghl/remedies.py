"""What an operator does about each crm_sync problem: one line per dead-letter reason and per
credential state, shown by `jorge dlq list` and `jorge status` (pure, no I/O)."""

from __future__ import annotations

REMEDIES: dict[str, str] = {
    "ghl_unauthorized": "GHL rejected the token (revoked, expired, wrong location): set a new one with "
    "`jorge crm credentials set ORG --location-id L` (or GHL_TOKEN), then "
    "`jorge dlq replay --reason ghl_unauthorized --organization ORG`",
    "ghl_scope_missing": "the token works but lacks the scope named in the detail: add it to the Private "
    "Integration or the Marketplace app (then reinstall), then "
    "`jorge dlq replay --reason ghl_scope_missing --organization ORG`",
    "ghl_rejected": "GHL refused the data or configuration (the detail has GHL's message, e.g. a pipeline "
    "or field id): fix it, then `jorge dlq replay ID`",
    "retries_exhausted": "GHL was down or throttling for the whole retry schedule: "
    "`jorge dlq replay ID` once it answers",
    "crm_credentials_unreadable": "fix CRM_CREDENTIALS_KEY or set the token again, then "
    "`jorge dlq replay --reason crm_credentials_unreadable`",
    "invalid_message": "the producer sent something crm_sync cannot read: fix the producer, then "
    "`jorge dlq discard ID --note ...`",
}

WAITING = (
    "events kept for organisations without GHL credentials: `jorge crm credentials set ORG --location-id L` "
    "(or GHL_ORGANIZATION for the global token); they sync by themselves"
)
REFRESH_FAILED = (
    "GHL refused the OAuth refresh token (app uninstalled or token revoked): reinstall the app and "
    "`jorge crm credentials set ORG --location-id L --oauth` with the new refresh token; kept events "
    "then sync"
)


def remedy(reason: str) -> str:
    """The one-line fix for a dead-letter reason (empty if none is known)."""
    return REMEDIES.get(reason, "")
