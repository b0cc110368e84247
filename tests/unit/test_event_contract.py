"""The event contract: committed files current, the AsyncAPI document valid, schema changes compatible."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from jorge_cli.compatibility import breaking_changes, version_problems
from jorge_cli.contract import (
    ASYNCAPI_YAML,
    REGENERATE,
    REPO,
    artifacts,
    committed_event_schemas,
    current_event_schemas,
    event_schema,
    stale_artifacts,
)
from schemas.envelope import EventEnvelope
from schemas.leads import LeadQualified
from schemas.qualification import Qualification
from schemas.registry import UPCASTERS, event_models, read_event
from schemas.topics import ALL_TOPICS, DEAD_LETTER, LEAD_FOLLOW_UP_DUE, WEBHOOK_ENDPOINT_DISABLED

ASYNCAPI_3_SCHEMA = REPO / "tests" / "data" / "asyncapi" / "3.0.0-without-$id.json"


@pytest.fixture(scope="module")
def generated() -> dict[Path, str]:
    return artifacts()


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(ASYNCAPI_YAML.read_text(encoding="utf-8"))
    return loaded


def test_committed_contract_files_are_current(generated: dict[Path, str]) -> None:
    stale = [str(path.relative_to(REPO)) for path in stale_artifacts(generated)]
    assert not stale, f"the event contract changed; regenerate it with `{REGENERATE}` and commit: {stale}"


def test_models_are_compatible_with_the_committed_schemas() -> None:
    problems = version_problems(current_event_schemas(), committed_event_schemas(), UPCASTERS)
    assert not problems, (
        "these changes break consumers: bump the event's schema_version and register an upcaster "
        "(schemas/registry.py UPCASTERS), see docs/EVENTS.md; only for a version never released: "
        f"`{REGENERATE} --allow-breaking`. {problems}"
    )


def test_asyncapi_document_is_valid_asyncapi_3(document: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(json.loads(ASYNCAPI_3_SCHEMA.read_text(encoding="utf-8")))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert document["asyncapi"] == "3.0.0" and not errors, errors
    # The validator does look: a wrong action and a missing channel are both refused.
    broken = copy.deepcopy(document)
    next(iter(broken["operations"].values()))["action"] = "publish"
    del next(iter(broken["channels"].values()))["address"]
    broken["operations"]["x"] = {"action": "send"}
    assert len(list(validator.iter_errors(broken))) >= 2


def test_every_topic_is_described_with_producers_consumers_headers_and_key(document: dict[str, Any]) -> None:
    operations = document["operations"].values()
    for spec in ALL_TOPICS:
        channel = document["channels"][spec.name]
        assert channel["bindings"]["kafka"]["partitions"] == spec.partitions
        actions = {op["action"] for op in operations if op["channel"]["$ref"] == f"#/channels/{spec.name}"}
        # Announcements for others to consume: the platform itself does not read them.
        announced = (DEAD_LETTER, WEBHOOK_ENDPOINT_DISABLED, LEAD_FOLLOW_UP_DUE)
        expected = {"send"} if spec in announced else {"send", "receive"}
        assert actions == expected, spec.name
    for message in document["components"]["messages"].values():
        assert message["headers"]["$ref"].startswith("#/components/schemas/")
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
    receive = [op for op in operations if op["action"] == "receive"]
    assert all(op["bindings"]["kafka"]["groupId"]["enum"][0].startswith("jorge.") for op in receive)
    headers = document["components"]["schemas"]["EventHeaders"]
    assert {"event-id", "event-type", "schema-version", "organization-id"} <= set(headers["properties"])
    assert set(event_models()) <= {m.get("name") for m in document["components"]["messages"].values()}


# -- the compatibility rules, and a test of the test ---------------------------------------------

LEAD = event_schema(LeadQualified)


def _changed(edit: Any) -> dict[str, Any]:
    schema = copy.deepcopy(LEAD)
    edit(schema["$defs"])
    return schema


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d["Intent"]["enum"].remove("renter_intent"), "enum values removed"),
        (lambda d: d["LeadToQualify"]["properties"].pop("source"), "removed or renamed"),
        (lambda d: d["LeadToQualify"]["required"].append("email"), "now required"),
        (
            lambda d: d["LeadToQualify"]["properties"].update(name={"type": "string"}),
            "no longer accepts null",
        ),
        (lambda d: d["Qualification"]["properties"].update(confidence={"type": "integer"}), "narrowed"),
        (
            lambda d: d["LeadToQualify"]["properties"].update(lead_id={"type": "string", "maxLength": 8}),
            "max",
        ),
    ],
)
def test_breaking_changes_are_caught(edit: Any, expected: str) -> None:
    problems = breaking_changes(LEAD, _changed(edit))
    assert len(problems) == 1 and expected in problems[0], problems


def test_compatible_changes_pass() -> None:
    def widen(d: dict[str, Any]) -> None:
        d["Intent"]["enum"].append("investor")
        d["LeadToQualify"]["properties"]["utm"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
        d["Qualification"]["properties"]["engine"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}

    assert breaking_changes(LEAD, _changed(widen)) == []


class _LeadV2(BaseModel):
    """LeadToQualify with `source` renamed to `channel`: a deliberately breaking change."""

    lead_id: str
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    message: str = ""
    property_address: str | None = None
    channel: str | None = None


class _PayloadV2(BaseModel):
    qualification_id: str
    lead: _LeadV2
    qualification: Qualification


def _breaking_model(version: int) -> type[EventEnvelope]:
    class Changed(EventEnvelope):
        EVENT_TYPE: ClassVar[str] = "lead.qualified"
        event_type: Literal["lead.qualified"] = "lead.qualified"
        schema_version: int = version
        payload: _PayloadV2

    return Changed


def test_a_breaking_change_fails_unless_the_version_is_bumped_and_old_events_upcast() -> None:
    committed = {"lead.qualified": {1: LEAD}}
    same_version = {"lead.qualified": (1, event_schema(_breaking_model(1)))}
    problems = version_problems(same_version, committed, set())
    assert any("source: property removed or renamed" in p for p in problems), problems
    assert any("completed_at: property removed" in p for p in problems), problems

    bumped = {"lead.qualified": (2, event_schema(_breaking_model(2)))}
    assert version_problems(bumped, committed, set()) == [
        "lead.qualified: consumers cannot read v1 events: no upcaster from v1 (schemas/registry.py UPCASTERS)"
    ]
    assert version_problems(bumped, committed, {("lead.qualified", 1)}) == []
    assert version_problems({}, committed, set()) == [
        "lead.qualified: event type removed while consumers may still read it"
    ]


def test_consumers_read_old_versions_through_upcasters(monkeypatch: pytest.MonkeyPatch) -> None:
    v2 = _breaking_model(2)
    old = json.loads(_sample_lead_qualified().model_dump_json())

    def v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
        data["payload"]["lead"]["channel"] = data["payload"]["lead"].pop("source")
        data["payload"].pop("completed_at")
        return data

    with pytest.raises(LookupError):
        read_event(v2, json.dumps(old))
    monkeypatch.setitem(UPCASTERS, ("lead.qualified", 1), v1_to_v2)
    event = read_event(v2, json.dumps(old))
    assert event.schema_version == 2 and event.payload.lead.channel == "zillow"  # type: ignore[attr-defined]


def _sample_lead_qualified() -> LeadQualified:
    return LeadQualified.model_validate(
        {
            "organization_id": "org-1",
            "correlation_id": "req-1",
            "payload": {
                "qualification_id": "qual-1",
                "lead": {"lead_id": "lead-1", "source": "zillow"},
                "qualification": {
                    "intent": "buyer_intent", "temperature": "hot", "next_action": "call",
                    "confidence": 0.9, "engine": "rules-v1",
                },
                "completed_at": "2026-01-01T00:00:00Z",
            },
        }
    )  # fmt: skip
