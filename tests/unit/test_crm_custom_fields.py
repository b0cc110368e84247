"""Custom fields: keys resolved to the location's ids, values typed as GHL's spec names them."""

from __future__ import annotations

from typing import Any

from services.crm_sync.ghl.custom_fields import FieldDefinition, definitions, format_value, resolve

FIELDS = definitions(
    [
        {"id": "f1", "fieldKey": "contact.pre_approved", "dataType": "CHECKBOX", "picklistOptions": ["Yes"]},
        {"id": "f2", "fieldKey": "contact.temperature", "dataType": "SINGLE_OPTIONS",
         "picklistOptions": ["Hot", "Warm", "Cold"]},
        {"id": "f3", "fieldKey": "contact.budget_max", "dataType": "MONETORY"},
        {"id": "f4", "fieldKey": "contact.investor", "dataType": "TEXT"},
        {"fieldKey": "contact.no_id"},
    ]
)  # fmt: skip


def test_keys_become_ids_and_unknown_keys_are_reported() -> None:
    entries: list[dict[str, Any]] = [
        {"key": "contact.temperature", "field_value": "hot"},
        {"key": "budget_max", "field_value": 750000.0},
        {"id": "f4", "field_value": False},
        {"key": "contact.unknown", "field_value": "x"},
    ]
    resolved, unknown = resolve(entries, FIELDS)
    assert resolved == (
        {"id": "f2", "field_value": "Hot"},
        {"id": "f3", "field_value": "750000"},
        {"id": "f4", "field_value": "No"},
    )
    assert unknown == ["contact.unknown"]
    assert len(FIELDS) == 4  # a listed field without an id is no target


def test_no_raw_booleans_whatever_the_type() -> None:
    checkbox = FIELDS[0]
    assert format_value(True, checkbox) == ["Yes"]
    assert format_value(False, checkbox) == []
    assert format_value("a, b", FieldDefinition("x", "k", "MULTIPLE_OPTIONS")) == ["a", "b"]
    assert format_value(True, FieldDefinition("x", "k", "TEXT")) == "Yes"
    assert format_value(3, FieldDefinition("x", "k", "NUMERICAL")) == "3"
