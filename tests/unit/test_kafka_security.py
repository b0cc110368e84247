"""Kafka TLS/SASL: one set of settings gives FastStream and raw aiokafka clients one connection."""

from __future__ import annotations

import ssl

import pytest

from jorge_runtime.kafka.security import kafka_client_options, kafka_security
from jorge_runtime.settings import ConfigError, load_settings


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    settings = load_settings(kafka_bootstrap_servers="k1:9092,k2:9092")
    assert kafka_security(settings) is None
    assert kafka_client_options(settings) == {"bootstrap_servers": ["k1:9092", "k2:9092"]}


def test_sasl_ssl_with_scram_gives_credentials_and_a_verifying_tls_context() -> None:
    settings = load_settings(
        kafka_bootstrap_servers="broker:9096",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="jorge",
        kafka_sasl_password="s3cret-value",
    )
    options = kafka_client_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("jorge", "s3cret-value")
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert "s3cret-value" not in repr(settings)


def test_tls_without_sasl() -> None:
    settings = load_settings(kafka_bootstrap_servers="broker:9093", kafka_security_protocol="SSL")
    options = kafka_client_options(settings)
    assert options["security_protocol"] == "SSL"
    assert "sasl_mechanism" not in options


def test_sasl_without_credentials_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="KAFKA_SASL_USERNAME"):
        load_settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="jorge")
