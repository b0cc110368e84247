"""How every Kafka client connects: TLS and SASL for managed clusters, plaintext for the embedded one.

FastStream brokers take a ``BaseSecurity``; raw aiokafka clients (topic admin, lag exporter,
delay-topic consumers, CLI producers) take the keyword arguments FastStream derives from it, so
both kinds connect the same way from the same settings.
"""

from __future__ import annotations

import ssl
from typing import Any

from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from jorge_runtime.settings import Settings

_SASL = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


def kafka_security(settings: Settings) -> BaseSecurity | None:
    """The FastStream security object for ``KAFKA_SECURITY_PROTOCOL``; None for PLAINTEXT."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    uses_tls = protocol in ("SSL", "SASL_SSL")
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile) if uses_tls else None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    assert settings.kafka_sasl_username is not None and settings.kafka_sasl_password is not None
    sasl = _SASL[settings.kafka_sasl_mechanism]
    return sasl(
        settings.kafka_sasl_username,
        settings.kafka_sasl_password.get_secret_value(),
        ssl_context=context,
        use_ssl=uses_tls,
    )


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for an aiokafka client: bootstrap servers plus TLS/SASL options."""
    settings.require("kafka_bootstrap_servers")
    assert settings.kafka_bootstrap_servers is not None
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        **parse_security(kafka_security(settings)),
    }
