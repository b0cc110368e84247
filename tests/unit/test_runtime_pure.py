"""Pure parts of the runtime and schemas: settings, redaction, phones, topics, dead-letter reasons."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from jorge_runtime.kafka.error_policy import describe
from jorge_runtime.observability.logs import redact
from jorge_runtime.settings import ConfigError, Settings, load_settings
from schemas.leads import InvalidPhoneError, LeadQualificationRequested, QualifyLeadRequest, normalize_phone
from schemas.topics import ALL_TOPICS, LEAD_QUALIFIED, TopicNames


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("(909) 555-0143", "+19095550143"),
        ("+1 909.555.0143", "+19095550143"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_valid_phones_are_normalised_to_e164(raw: str, e164: str) -> None:
    assert normalize_phone(raw) == e164


@pytest.mark.parametrize("raw", ["12", "555-01", "call me", "+1 000 000 0000", "9095550143; DROP TABLE"])
def test_invalid_phones_are_refused_with_a_reason(raw: str) -> None:
    with pytest.raises(InvalidPhoneError):
        normalize_phone(raw)


def test_a_lead_needs_a_way_to_be_reached() -> None:
    with pytest.raises(ValidationError, match="phone or an email"):
        QualifyLeadRequest(lead_id="l-1", message="hi")


def test_redaction_hides_personal_data_and_secrets_but_not_addresses() -> None:
    line = (
        "lead maria@example.com +1 (909) 555-0143 key jk_live_abcdefghijklmnop "
        "whsec_c2VjcmV0c2VjcmV0c2VjcmV0 "
        "Authorization: Bearer abc.def.ghi postgresql://jorge:s3cret@db:5432/jorge "
        "at 127.0.0.1:8000 offset 12345678 qual-0123456789abcdef"
    )
    cleaned = redact(line)
    for secret in ("maria@example.com", "555-0143", "abcdefghijklmnop", "abc.def.ghi", "s3cret", "c2VjcmV0"):
        assert secret not in cleaned
    for kept in ("127.0.0.1:8000", "offset 12345678", "qual-0123456789abcdef"):
        assert kept in cleaned


def test_malformed_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://nope")
    with pytest.raises(ConfigError, match=r"^DATABASE_URL is invalid"):
        load_settings()
    monkeypatch.setenv("DATABASE_URL", "postgresql://localhost/jorge")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "localhost")
    with pytest.raises(ConfigError, match=r"^KAFKA_BOOTSTRAP_SERVERS is invalid"):
        load_settings()


def test_missing_settings_are_named() -> None:
    with pytest.raises(ConfigError, match=r"^REDIS_URL is not set"):
        Settings(redis_url=None).require("redis_url")


def test_topic_names_take_the_prefix_and_every_topic_has_partitions() -> None:
    names = TopicNames("t1.")
    assert names(LEAD_QUALIFIED) == "t1.lead.qualified"
    assert len(names.all()) == len(ALL_TOPICS)
    assert all(spec.partitions >= 1 for spec in ALL_TOPICS)


def test_dead_letter_reason_names_fields_without_echoing_values() -> None:
    with pytest.raises(ValidationError) as caught:
        LeadQualificationRequested.model_validate_json(json.dumps({"payload": {"secret": "+19095550143"}}))
    reason = describe(caught.value)
    assert reason.startswith("invalid message:")
    assert "organization_id" in reason
    assert "+19095550143" not in reason
