"""The sandbox's contact rules as GHL documents them, and crm_sync adopting a contact GHL had."""

from __future__ import annotations

from sandboxes.ghl.state import Faults, SandboxState
from services.crm_sync.ghl.contact_update import adopt_existing
from services.crm_sync.ghl.mapping import ContactDetails, CrmPlan


def test_a_phone_is_ignored_only_when_another_contact_owns_it() -> None:
    state = SandboxState()
    ana, _ = state.upsert_contact({"locationId": "l", "email": "ana@example.com", "phone": "+1555000001"})
    bob, _ = state.upsert_contact({"locationId": "l", "email": "bob@example.com", "phone": "+1555000002"})
    # Matched by email; the new phone belongs to nobody else: GHL updates it.
    state.upsert_contact({"locationId": "l", "email": "ana@example.com", "phone": "+1555000009"})
    assert ana.phone == "+1555000009"
    # The new phone is Bob's: GHL keeps Ana's and says nothing.
    same, new = state.upsert_contact({"locationId": "l", "email": "ana@example.com", "phone": "+1555000002"})
    assert same is ana and not new and ana.phone == "+1555000009" and bob.phone == "+1555000002"


def test_users_report_the_phone_dropped_even_without_a_conflict_a_named_fault() -> None:
    state = SandboxState(faults=Faults(upsert_drops_phone=True))
    ana, _ = state.upsert_contact({"locationId": "l", "email": "ana@example.com", "phone": "+1555000001"})
    state.upsert_contact({"locationId": "l", "email": "ana@example.com", "phone": "+1555000009"})
    assert ana.phone == "+1555000001"


def test_answers_have_ghls_shape() -> None:
    state = SandboxState()
    contact, _ = state.upsert_contact(
        {"locationId": "l", "email": "a@example.com", "customFields": [{"id": "f1", "field_value": "Hot"}]}
    )
    answered = state.as_ghl(contact)
    assert answered["customFields"] == [{"id": "f1", "value": "Hot"}]
    assert None not in answered.values() and "notes" not in answered


def _plan() -> CrmPlan:
    return CrmPlan(
        person_id="lead-1",
        contact=ContactDetails(email="ana@example.com", phone="+1555000001", name="Ana Lima"),
        contact_fields={"name": "Ana Lima", "firstName": "Ana", "lastName": "Lima",
                        "email": "ana@example.com", "phone": "+1555000001", "source": "zillow"},
        tags=("jorge",),
        note=None,
        custom_fields=({"id": "f1", "field_value": "Hot"},),
    )  # fmt: skip


def test_a_contact_ghl_had_keeps_its_human_typed_name_and_source() -> None:
    existing = {"id": "c1", "firstName": "Ana Maria", "email": "ana@example.com", "source": "referral"}
    update = adopt_existing(_plan(), existing, at_ms=1)
    assert update.body == {"phone": "+1555000001", "customFields": [{"id": "f1", "field_value": "Hot"}]}
    assert "name" not in update.written and "phone" in update.written


def test_a_contact_ghl_had_without_a_name_gets_ours() -> None:
    update = adopt_existing(_plan(), {"id": "c1", "phone": "+1555000001"}, at_ms=1)
    assert update.body["name"] == "Ana Lima" and "source" not in update.body and "phone" not in update.body
