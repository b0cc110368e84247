"""What crm_sync writes to GoHighLevel for each event (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.qualification import Timeline
from schemas.sellers import ConsultationRequest, ConsultationRequestedPayload
from services.crm_sync.ghl.mapping import (
    ContactDetails,
    buyer_matched_plan,
    consultation_plan,
    custom_fields,
    lead_qualified_plan,
    parse_custom_fields,
    qualification_values,
    seller_analyzed_plan,
    split_name,
    tag,
)
from services.crm_sync.ghl.notes import marker
from tests.support.ghl import qualified_event


def test_hot_lead_gets_contact_tags_note_and_opportunity_valued_at_its_budget() -> None:
    event = qualified_event("org-1", 3, hot=True, source="Zillow Premier")
    plan = lead_qualified_plan(event, {}, opportunities=True)
    assert plan.person_id == "lead-00003"
    assert plan.priority == "hot"
    assert plan.contact_fields == {
        "name": "Lead Number3",
        "firstName": "Lead",
        "lastName": "Number3",
        "source": "Zillow Premier",
        "email": "lead3@example.com",
        "phone": "+19095550003",
    }
    assert "tags" not in plan.contact_fields  # tags on upsert would replace the contact's tags
    assert plan.tags == ("jorge", "intent:buyer_intent", "temperature:hot", "source:zillow-premier")
    assert plan.note is not None
    assert "HOT buyer" in plan.note and "Next action: Call within the hour" in plan.note
    assert plan.note.endswith(marker(str(event.event_id)))
    assert plan.opportunity is not None
    assert plan.opportunity.monetary_value == 750_003
    assert plan.opportunity.name == "Lead Number3 - buyer_intent"


def test_cold_lead_has_no_opportunity_and_takes_the_standard_lane() -> None:
    plan = lead_qualified_plan(qualified_event("org-1", 1, hot=False, source=None), {}, opportunities=True)
    assert plan.opportunity is None
    assert plan.priority == "standard"
    assert plan.tags == ("jorge", "intent:buyer_intent", "temperature:cold")
    assert plan.contact_fields["source"] == "Jorge"


def test_no_pipeline_means_no_opportunity_even_when_hot() -> None:
    plan = lead_qualified_plan(qualified_event("org-1", 1, hot=True), {}, opportunities=False)
    assert plan.opportunity is None


def test_custom_fields_are_configuration() -> None:
    mapping = parse_custom_fields("timeline=contact.timeline, budget_max=AbC123,motivation=contact.why")
    event = qualified_event("org-1", 2, hot=True)
    plan = lead_qualified_plan(event, mapping, opportunities=False)
    assert plan.custom_fields == (
        {"key": "contact.timeline", "field_value": "unknown"},
        {"id": "AbC123", "field_value": 750_002},
    )  # motivation is None, so it is left out
    assert custom_fields(qualification_values(event.payload.qualification), {}) == ()


@pytest.mark.parametrize("spec", ["timeline", "=x", "timeline="])
def test_malformed_custom_field_mapping_is_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_custom_fields(spec)


def test_names_and_tags() -> None:
    assert split_name("  Maria  de la Cruz ") == {
        "name": "Maria de la Cruz",
        "firstName": "Maria",
        "lastName": "de la Cruz",
    }
    assert split_name("Cher") == {"name": "Cher", "firstName": "Cher"}
    assert split_name(None) == {}
    assert tag("source", " Open  House ") == "source:open-house"


def test_consultation_is_hot_and_notes_the_preferred_times() -> None:
    request = ConsultationRequest(
        preferred_times=[datetime(2030, 1, 15, 18, 0, tzinfo=UTC)],
        name="Sam Rivera",
        email="sam@example.com",
        notes="Mornings are best",
    )
    plan = consultation_plan(
        "e-1", ConsultationRequestedPayload(consultation_id="c-1", seller_id="s-1", request=request)
    )
    assert plan.priority == "hot"
    assert plan.person_id == "s-1"
    assert "consultation-requested" in plan.tags
    assert (
        plan.note is not None and "2030-01-15T18:00+00:00" in plan.note and "Mornings are best" in plan.note
    )


def test_buyer_matches_and_seller_cma_become_notes() -> None:
    result = {
        "total_matches": 7,
        "matches": [
            {
                "rank": 1,
                "property": {"address": "1 Elm St", "price": 725_000, "bedrooms": 3},
                "match_score": 0.92,
            }
        ],
        "next_actions": ["Schedule showing"],
    }
    buyer = buyer_matched_plan("e-2", "b-1", ContactDetails(email="b@example.com"), result)
    assert buyer.note is not None
    assert "matched 7 homes" in buyer.note and "1 Elm St: $725,000, 3 bed (score 92%)" in buyer.note
    cma = {
        "cma": {
            "price_recommendation": {"low": 800_000, "mid": 850_000, "high": 900_000, "confidence": 0.8},
            "comparable_properties": [{"address": "x", "price": 1}],
        },
        "market_conditions": "Balanced",
        "recommendations": ["Stage the living room"],
    }
    seller = seller_analyzed_plan("e-3", "s-1", ContactDetails(phone="+19095550100"), "456 Oak Ave", cma)
    assert seller.note is not None
    assert (
        "$800,000 - $900,000 (suggested $850,000)" in seller.note and "Stage the living room" in seller.note
    )
    assert seller.note.endswith(marker("e-3"))


def test_note_reads_like_a_salesperson_would_write_it() -> None:
    event = qualified_event("org-1", 4, hot=True)
    qualification = event.payload.qualification
    money = qualification.financial_readiness.model_copy(update={"budget_min": None, "budget_max": 750_000})
    ceiling_only = event.payload.model_copy(
        update={
            "qualification": qualification.model_copy(
                update={"financial_readiness": money, "timeline": Timeline.MONTHS_1_3}
            )
        }
    )
    plan = lead_qualified_plan(event.model_copy(update={"payload": ceiling_only}), {}, opportunities=True)
    assert plan.note is not None
    assert "Timeline: 1-3 months" in plan.note
    assert "budget up to $750,000" in plan.note
