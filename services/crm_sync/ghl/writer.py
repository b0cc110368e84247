"""Carries out a CrmPlan against GHL so that every write happens once, whatever is retried.

- Without our mapping (person -> contact id), GHL's duplicate search runs first: a contact GHL
  already has gets only the fields it lacks (a name typed by a human and ``source`` are never
  overwritten); otherwise the contact goes through upsert, and a 422 is checked with the
  duplicate search, because a 422 may still have created the contact. A phone GHL ignored
  (another contact owns it) is not recorded as written.
- Custom-field keys are resolved to the location's field ids and typed values first.
  With a mapping, the fields a later event changed (email, phone, name, custom fields; never
  tags or source) go through PUT /contacts/{id} (see contact_update.py).
- Tags go through the tags endpoint (adding is idempotent).
- A note is 'started' in PostgreSQL before it is sent and 'done' after; a 'started' note found
  later (crash, timeout, 5xx) is looked up by its marker line before it is sent again.
- The opportunity is searched by contact and pipeline, then created (``POST /opportunities/``)
  or updated by id: a retry after a lost answer finds the one it created.
One replica at a time works on a person (an advisory lock), so concurrent deliveries of the
same event cannot both write a note.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import datetime

from services.crm_sync.ghl.client import GhlClient, GhlCredentials, GhlRejectedError
from services.crm_sync.ghl.contact_update import adopt_existing, contact_update, plan_fields, written_entries
from services.crm_sync.ghl.custom_fields import CustomFieldCatalog, FieldDefinition, definitions
from services.crm_sync.ghl.mapping import CrmPlan
from services.crm_sync.ghl.notes import marker
from services.crm_sync.ghl.repository import CrmRepository
from services.crm_sync.ghl.written_fields import WrittenFields


class NoContactDetails(Exception):
    """Neither our mapping nor the event or database has a way to reach this person."""


#: A step's recorded (status, result), or None when it never started.
Step = tuple[str, str | None] | None


class CrmWriter:
    """Applies plans; raises the GHL client's errors for the handler to sort."""

    def __init__(self, client: GhlClient, repository: CrmRepository, written: WrittenFields) -> None:
        self._client = client
        self._repository = repository
        self._written = written
        self._credentials: dict[str, GhlCredentials] = {}
        self._fields = CustomFieldCatalog(self._load_fields)

    async def _load_fields(self, location_id: str) -> list[FieldDefinition]:
        credentials = self._credentials[location_id]
        return definitions(await self._client.custom_fields(credentials, "standard"))

    async def apply(
        self,
        event_id: uuid.UUID,
        organization_id: str,
        credentials: GhlCredentials,
        plan: CrmPlan,
        occurred_at: datetime | None = None,
    ) -> str:
        """Write the plan; return the contact id. ``occurred_at`` orders contact updates."""
        at_ms = int((occurred_at.timestamp() if occurred_at else time.time()) * 1000)
        if plan.custom_fields:
            self._credentials[credentials.location_id] = credentials
            resolved = await self._fields.resolve(credentials.location_id, plan.custom_fields)
            plan = dataclasses.replace(plan, custom_fields=resolved)
        async with self._repository.person_lock(organization_id, plan.person_id):
            contact_id = await self._contact(organization_id, credentials, plan, at_ms)
            # Read under the person's lock: no other replica writes this event's steps meanwhile.
            steps = await self._repository.steps(event_id)
            if plan.tags:
                await self._tags(event_id, credentials, contact_id, plan, steps.get("tags"))
            if plan.note:
                await self._note(event_id, credentials, contact_id, plan, steps.get("note"))
            if plan.opportunity and credentials.pipeline_id:
                await self._opportunity(event_id, credentials, contact_id, plan, steps.get("opportunity"))
            return contact_id

    async def _contact(
        self, organization_id: str, credentials: GhlCredentials, plan: CrmPlan, at_ms: int
    ) -> str:
        repo = self._repository
        location = credentials.location_id
        if known := await repo.contact_id(organization_id, location, plan.person_id):
            update = contact_update(plan, await self._written.get(location, known), at_ms)
            if update.body:
                await self._client.update_contact(credentials, known, update.body, plan.priority)
                await self._written.record(location, known, update.written)
            return known
        if not plan.contact.reachable:
            raise NoContactDetails(plan.person_id)
        email, phone = plan.contact.email, plan.contact.phone
        existing = await self._client.duplicate_contact(credentials, email, phone, plan.priority)
        if existing is not None:
            contact_id = await repo.save_contact(
                organization_id, location, plan.person_id, str(existing["id"])
            )
            adopted = adopt_existing(plan, existing, at_ms)
            if adopted.body:
                await self._client.update_contact(credentials, contact_id, adopted.body, plan.priority)
            await self._written.record(location, contact_id, adopted.written)
            return contact_id
        fields = dict(plan.contact_fields)
        if plan.custom_fields:
            fields["customFields"] = list(plan.custom_fields)
        answer = await self._client.upsert_contact(credentials, fields, plan.priority)
        if answer.status == 422:
            found = await self._client.find_duplicate(
                credentials, plan.contact.email, plan.contact.phone, plan.priority
            )
            if found is None:
                raise GhlRejectedError("upsert_contact", 422, str(answer.body.get("message", ""))[:200])
            contact_id = found
        else:
            contact_id = str(answer.body["contact"]["id"])
        contact_id = await repo.save_contact(organization_id, location, plan.person_id, contact_id)
        written = plan_fields(plan)
        kept_phone = (answer.body.get("contact") or {}).get("phone") if answer.status != 422 else None
        if "phone" in written and kept_phone != written["phone"]:
            del written["phone"]  # GHL ignored it (another contact owns it): not ours to claim
        await self._written.record(location, contact_id, written_entries(written, at_ms))
        return contact_id

    async def _tags(
        self, event_id: uuid.UUID, credentials: GhlCredentials, contact_id: str, plan: CrmPlan, status: Step
    ) -> None:
        if status and status[0] == "done":
            return
        await self._client.add_tags(credentials, contact_id, list(plan.tags), plan.priority)
        await self._repository.finish_step(event_id, "tags")

    async def _note(
        self, event_id: uuid.UUID, credentials: GhlCredentials, contact_id: str, plan: CrmPlan, status: Step
    ) -> None:
        assert plan.note is not None
        repo = self._repository
        if status and status[0] == "done":
            return
        if status is not None:  # sent before with an unknown outcome: look before sending again
            wanted = marker(str(event_id))
            notes = await self._client.list_notes(credentials, contact_id, plan.priority)
            if found := next((n for n in notes if wanted in str(n.get("body", ""))), None):
                await repo.finish_step(event_id, "note", str(found.get("id", "")))
                return
        else:
            await repo.start_step(event_id, "note")
        note_id = await self._client.add_note(credentials, contact_id, plan.note, plan.priority)
        await repo.finish_step(event_id, "note", note_id)

    async def _opportunity(
        self, event_id: uuid.UUID, credentials: GhlCredentials, contact_id: str, plan: CrmPlan, status: Step
    ) -> None:
        assert plan.opportunity is not None and credentials.pipeline_id
        if status and status[0] == "done":
            return
        pipeline = credentials.pipeline_id
        client = self._client
        found = await client.find_opportunity(credentials, contact_id, pipeline, plan.priority)
        value = plan.opportunity.monetary_value
        if found is not None:
            # The contact's opportunity in this pipeline exists (ours from a lost answer, or a
            # salesperson's): bring its name and value up to date, never move its stage or status.
            update: dict[str, object] = {"name": plan.opportunity.name}
            if value is not None:
                update["monetaryValue"] = value
            await client.update_opportunity(credentials, found, update, plan.priority)
            await self._repository.finish_step(event_id, "opportunity", found)
            return
        fields: dict[str, object] = {
            "pipelineId": pipeline,
            "contactId": contact_id,
            "name": plan.opportunity.name,
            "status": "open",
        }
        if credentials.stage_id:
            fields["pipelineStageId"] = credentials.stage_id
        if value is not None:
            fields["monetaryValue"] = value
        opportunity_id = await client.create_opportunity(credentials, fields, plan.priority)
        await self._repository.finish_step(event_id, "opportunity", opportunity_id)
