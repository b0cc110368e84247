"""Errors to Sentry when SENTRY_DSN is set: the official SDK, PII scrubbed, release and environment tagged."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from jorge_runtime.observability.logs import redact
from jorge_runtime.settings import Settings

# Field names Sentry blanks besides its defaults (secrets and the lead's contact details).
DENYLIST = ["authorization", "x-api-key", "jwt_secret", "ghl_token", "crm_credentials_key", "api_key"]
PII_FIELDS = ["phone", "email", "name", "message", "address", "ip_address"]


def release_name(settings: Settings) -> str:
    """SENTRY_RELEASE, else jorge-platform@<installed version>."""
    if settings.sentry_release:
        return settings.sentry_release
    try:
        return f"jorge-platform@{version('jorge-platform')}"
    except PackageNotFoundError:
        return "jorge-platform@unknown"


def scrub_event(event: Any, _hint: Mapping[str, Any] | None = None) -> Any:
    """before_send: redact phones, emails, tokens and keys in every string of the event, the
    exception messages and breadcrumbs included (what the denylists cannot know by field name)."""
    if isinstance(event, str):
        return redact(event)
    if isinstance(event, dict):
        return {key: scrub_event(value) for key, value in event.items()}
    if isinstance(event, list):
        return [scrub_event(value) for value in event]
    return event


def init_error_reporting(settings: Settings, service: str) -> bool:
    """Start the Sentry SDK for this process if SENTRY_DSN is set; return whether it did."""
    if settings.sentry_dsn is None:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.asyncio import AsyncioIntegration
    from sentry_sdk.integrations.fastapi import FastApiIntegration
    from sentry_sdk.integrations.starlette import StarletteIntegration
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, DEFAULT_PII_DENYLIST, EventScrubber

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.environment,
        release=release_name(settings),
        server_name=service,
        event_scrubber=EventScrubber(
            denylist=DEFAULT_DENYLIST + DENYLIST,
            pii_denylist=DEFAULT_PII_DENYLIST + PII_FIELDS,
            recursive=True,
        ),
        before_send=scrub_event,
        before_send_transaction=scrub_event,
        traces_sample_rate=settings.sentry_traces_sample_rate,
        # Only these: auto-enabling imports every supported library found (anthropic, mcp...), seconds
        # of start-up for integrations the services do not need.
        auto_enabling_integrations=False,
        integrations=[StarletteIntegration(), FastApiIntegration(), AsyncioIntegration()],
    )
    sentry_sdk.set_tag("service", service)
    return True
