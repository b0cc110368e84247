"""Which contact fields a later event updates on GHL (pure)."""

from __future__ import annotations

from services.crm_sync.ghl.contact_update import contact_update, plan_fields, written_entries
from services.crm_sync.ghl.mapping import ContactDetails, buyer_matched_plan, lead_qualified_plan
from tests.support.ghl import qualified_event

MAPPING = {"timeline": "contact.timeline"}


def test_nothing_is_sent_when_the_fields_are_what_we_wrote() -> None:
    plan = lead_qualified_plan(qualified_event("org-1", 1, hot=False), MAPPING, opportunities=False)
    written = written_entries(plan_fields(plan), 1_000)
    assert contact_update(plan, written, 2_000).body == {}


def test_changed_email_phone_and_custom_field_are_sent_without_tags_or_source() -> None:
    first = lead_qualified_plan(qualified_event("org-1", 1, hot=False), MAPPING, opportunities=False)
    written = written_entries(plan_fields(first), 1_000)
    later = qualified_event("org-1", 1, hot=True, source="facebook")
    lead = later.payload.lead.model_copy(update={"email": "new@example.com", "phone": "+19095559999"})
    later = later.model_copy(update={"payload": later.payload.model_copy(update={"lead": lead})})
    plan = lead_qualified_plan(later, {**MAPPING, "temperature": "Xyz123"}, opportunities=False)
    update = contact_update(plan, written, 2_000)
    assert update.body == {
        "email": "new@example.com",
        "phone": "+19095559999",
        "customFields": [{"id": "Xyz123", "field_value": "hot"}],
    }
    assert set(update.written) == {"email", "phone", "cf:Xyz123"}
    assert all(entry.endswith("@2000") for entry in update.written.values())
    assert "new@example.com" not in str(update.written)  # fingerprints, not personal data


def test_an_older_event_never_undoes_a_newer_change() -> None:
    newer = buyer_matched_plan("e2", "b1", ContactDetails("Ann Lee", "ann@new.com"), {})
    written = written_entries(plan_fields(newer), 5_000)
    older = buyer_matched_plan("e1", "b1", ContactDetails("Ann Lee", "ann@old.com"), {})
    assert contact_update(older, written, 4_000).body == {}
    assert contact_update(older, written, 6_000).body == {"email": "ann@old.com"}


def test_unknown_fields_are_sent_once_then_remembered() -> None:
    plan = buyer_matched_plan("e1", "b1", ContactDetails("Ann Lee", None, "+15550001"), {})
    update = contact_update(plan, {}, 1_000)
    assert update.body == {"name": "Ann Lee", "firstName": "Ann", "lastName": "Lee", "phone": "+15550001"}
    assert contact_update(plan, update.written, 1_000).body == {}
