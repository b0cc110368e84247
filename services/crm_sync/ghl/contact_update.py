"""Which contact fields a later event changes, so crm_sync updates only those (pure, no I/O).

What we last wrote to a contact is kept per field as ``<fingerprint>@<event time ms>``: a
fingerprint (a hash, so no personal data is stored) and the time of the event that carried it.
A field is sent again only when its value differs from what we wrote and the event is not older
than the one that wrote it (a replayed old dead letter never undoes a newer change). Tags are
never part of an update (on GHL they would replace the contact's tags), nor is ``source``: it
records where the lead first came from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.crm_sync.ghl.mapping import CrmPlan

UPDATABLE_FIELDS = ("firstName", "lastName", "name", "email", "phone")
CUSTOM_PREFIX = "cf:"


@dataclass(frozen=True, slots=True)
class ContactUpdate:
    """The update call's body (empty: nothing changed) and the entries to record once sent."""

    body: dict[str, Any]
    written: dict[str, str]


def fingerprint(value: Any) -> str:
    """A short, stable hash of a field's value."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def plan_fields(plan: CrmPlan) -> dict[str, Any]:
    """The contact's fields this plan carries, by name (custom fields as ``cf:<id or key>``)."""
    fields = {name: plan.contact_fields[name] for name in UPDATABLE_FIELDS if plan.contact_fields.get(name)}
    for custom in plan.custom_fields:
        ref = custom.get("id") or custom.get("key")
        fields[f"{CUSTOM_PREFIX}{ref}"] = custom
    return fields


def written_entries(fields: Mapping[str, Any], at_ms: int) -> dict[str, str]:
    """What to record after ``fields`` were written by an event of time ``at_ms``."""
    return {name: f"{fingerprint(value)}@{at_ms}" for name, value in fields.items()}


def contact_update(plan: CrmPlan, written: Mapping[str, str], at_ms: int) -> ContactUpdate:
    """The fields of ``plan`` that differ from what was written, unless a newer event wrote them."""
    changed: dict[str, Any] = {}
    for name, value in plan_fields(plan).items():
        previous, _, previous_at = written.get(name, "").partition("@")
        if previous == fingerprint(value):
            continue
        if previous_at.isdigit() and int(previous_at) > at_ms:
            continue
        changed[name] = value
    body = {name: value for name, value in changed.items() if not name.startswith(CUSTOM_PREFIX)}
    custom = [value for name, value in changed.items() if name.startswith(CUSTOM_PREFIX)]
    if custom:
        body["customFields"] = custom
    return ContactUpdate(body, written_entries(changed, at_ms))


def adopt_existing(plan: CrmPlan, existing: Mapping[str, Any], at_ms: int) -> ContactUpdate:
    """A contact GHL already had (found by email or phone, not through our mapping): only the
    fields it lacks are written (a name a salesperson typed stays; ``source`` is never sent);
    custom fields, which only we write, are written as for any update."""
    blank = {
        name: value
        for name, value in plan_fields(plan).items()
        if name.startswith(CUSTOM_PREFIX) or not existing.get(name)
    }
    if "name" in blank and (existing.get("firstName") or existing.get("lastName")):
        blank = {k: v for k, v in blank.items() if k not in ("name", "firstName", "lastName")}
    body = {name: value for name, value in blank.items() if not name.startswith(CUSTOM_PREFIX)}
    custom = [value for name, value in blank.items() if name.startswith(CUSTOM_PREFIX)]
    if custom:
        body["customFields"] = custom
    return ContactUpdate(body, written_entries(blank, at_ms))
