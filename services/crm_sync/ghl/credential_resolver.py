"""Which GHL credentials an organisation's events are written with: its own row in
crm_credentials (an OAuth access token refreshed first when it is about to expire), else the
global GHL_TOKEN when GHL_ORGANIZATION names it, else none (its events are kept, waiting_room.py)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import asyncpg

from jorge_runtime.credential_cipher import CredentialsUnreadable
from jorge_runtime.settings import Settings
from services.crm_sync.ghl.client import GhlClient, GhlCredentials
from services.crm_sync.ghl.credential_store import CredentialStore, RefreshRefused, StoredCredentials

log = logging.getLogger(__name__)


class CredentialResolver:
    """Resolves credentials per event (a change applies to the next event, no restart)."""

    def __init__(
        self, settings: Settings, pool: asyncpg.Pool, store: CredentialStore, client: GhlClient
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._store = store
        self._client = client
        self._global_ids: dict[str, bool] = {}
        self._refresh_failed: set[str] = set()

    async def has_credentials(self, organization_id: str) -> bool:
        """Whether the organisation's events can be written now."""
        try:
            return await self.resolve(organization_id) is not None
        except CredentialsUnreadable:
            return False

    async def resolve(self, organization_id: str) -> GhlCredentials | None:
        """The organisation's own credentials; else the global ones if it is GHL_ORGANIZATION;
        else None. A row still in plain text is refused (open() encrypts such rows)."""
        s = self._settings
        own = await self._store.get(organization_id)
        if own is not None and own.kind == "oauth":
            own = await self._fresh(organization_id, own)
            if own is None:
                return None  # the refresh failed: its events wait for new credentials
        if own is not None:
            if not own.encrypted:
                raise CredentialsUnreadable(
                    "the token is stored in plain text: `jorge crm credentials rotate` encrypts it"
                )
            return GhlCredentials(
                own.location_id,
                own.token,
                own.pipeline_id or s.ghl_pipeline_id,
                own.stage_id or s.ghl_pipeline_stage_id,
            )
        if s.ghl_token is None or not s.ghl_location_id or not await self._is_global(organization_id):
            return None
        return GhlCredentials(s.ghl_location_id, s.ghl_token, s.ghl_pipeline_id, s.ghl_pipeline_stage_id)

    async def _fresh(self, organization_id: str, own: StoredCredentials) -> StoredCredentials | None:
        """OAuth credentials with an access token valid for at least the refresh margin, or None
        when they cannot be refreshed (GHL refused the refresh token, or no OAuth client is
        configured): a credential problem of this organisation, said once, its events kept."""
        s = self._settings
        store, client = self._store, self._client
        margin = timedelta(seconds=s.ghl_token_refresh_margin_seconds)
        problem = own.refresh_error
        if problem is None and own.expires_at is not None and own.expires_at - datetime.now(UTC) <= margin:
            client_id, secret = s.ghl_client_id, s.ghl_client_secret
            if not client_id or secret is None:
                problem = "GHL_CLIENT_ID and GHL_CLIENT_SECRET are not set: OAuth tokens cannot be refreshed"
            else:
                try:
                    if await store.refresh(
                        organization_id, margin, lambda token: client.refresh_token(client_id, secret, token)
                    ):
                        log.info("GHL access token refreshed", extra={"organization_id": organization_id})
                    own = await store.get(organization_id) or own
                    problem = own.refresh_error
                except RefreshRefused as refused:
                    problem = str(refused)
        if problem is None:
            return own
        if organization_id not in self._refresh_failed:
            self._refresh_failed.add(organization_id)
            log.error(
                "the organisation's GHL OAuth token cannot be refreshed (%s); its events are kept "
                "until `jorge crm credentials set ORG --oauth` stores a new refresh token",
                problem,
                extra={"organization_id": organization_id},
            )
        return None

    async def _is_global(self, organization_id: str) -> bool:
        """Whether GHL_ORGANIZATION names this organisation (by id, or by name)."""
        named = self._settings.ghl_organization
        if not named:
            return False
        if organization_id == named:
            return True
        if organization_id not in self._global_ids:
            name = await self._pool.fetchval(
                "SELECT name FROM organizations WHERE organization_id = $1", organization_id
            )
            self._global_ids[organization_id] = bool(name) and str(name).casefold() == named.casefold()
        return self._global_ids[organization_id]
