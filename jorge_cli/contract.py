"""The event contract generated from the code: the AsyncAPI document and each event's JSON Schema.

Every service's composition root is built with placeholder settings (nothing connects) and its
brokers' subscribers and publishers are read with FastStream's AsyncAPI support; the result is
regrouped per topic, with the envelope headers, the key and the partitions of schemas/topics.py.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from jorge_runtime.kafka.broker import create_broker
from jorge_runtime.settings import Settings
from schemas.envelope import EventEnvelope
from schemas.registry import DeadLetterHeaders, EventHeaders, event_models, schema_version_of
from schemas.topics import ALL_TOPICS, CRM_RETRY_TOPICS, DEAD_LETTER, TopicNames, TopicSpec

REPO = Path(__file__).resolve().parents[1]
ASYNCAPI_YAML = REPO / "docs" / "asyncapi.yaml"
CONTRACT_DIR = REPO / "schemas" / "contract"
ASYNCAPI_JSON = CONTRACT_DIR / "asyncapi.json"
REGENERATE = "./jorge events schemas --write"
GROUP_PREFIX = "jorge."
WORKERS = ("qualifier", "matcher", "seller_analyzer", "crm_sync")
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
KEY_ORDERING = "one entity's events share a partition and stay in order."


def _key_schema(model: type[EventEnvelope] | None) -> dict[str, Any]:
    """The message key: the entity id the model's docstring names ("(keyed by lead id)")."""
    keyed = re.search(r"\(keyed by ([^)]+)\)", (model.__doc__ or "") if model else "")
    what = (
        keyed.group(1) if keyed else "the id of the entity the event is about (lead, buyer, seller, endpoint)"
    )
    return {"type": "string", "description": f"{what[0].upper()}{what[1:]}: {KEY_ORDERING}"}


def placeholder_settings() -> Settings:
    """Settings that build every service without connecting, and without any prefix."""
    return Settings(
        _env_file=None,
        environment="development",
        kafka_bootstrap_servers="kafka:9092",
        database_url="postgresql://jorge@postgres/jorge",
        redis_url="redis://redis:6379/0",
        jwt_secret="placeholder-secret-for-the-contract-0123456789",  # noqa: S106  never used to sign: the document only
        kafka_topic_prefix="",
        kafka_consumer_group_prefix=GROUP_PREFIX,
        anthropic_api_key=None,
    )


def service_brokers(settings: Settings) -> dict[str, list[KafkaBroker]]:
    """Each service's brokers, as its composition root wires them."""
    from services.gateway.asyncapi import declare_publications

    gateway = create_broker(settings, client_id="jorge-gateway", producer_only=True)
    found = {"gateway": [declare_publications(gateway, TopicNames(settings.kafka_topic_prefix))]}
    for name in WORKERS:
        app = importlib.import_module(f"services.{name}.app").create_app(settings)
        found[name] = list(app.schema.brokers)
    return found


def event_schema(model: type[EventEnvelope]) -> dict[str, Any]:
    """The JSON Schema a consumer of ``model`` accepts (pydantic's validation schema)."""
    return {"$schema": JSON_SCHEMA_DIALECT, **model.model_json_schema()}


def current_event_schemas() -> dict[str, tuple[int, dict[str, Any]]]:
    """Event type -> (the version its model writes, that version's JSON Schema)."""
    return {
        event_type: (schema_version_of(model), event_schema(model))
        for event_type, model in event_models().items()
    }


@dataclass
class _Operation:
    service: str
    action: str  # send | receive
    topic: TopicSpec
    summary: str | None
    group_id: str | None


def _operations(service: str, brokers: Iterable[KafkaBroker]) -> list[_Operation]:
    by_name = {spec.name: spec for spec in ALL_TOPICS}
    brokers = list(brokers)
    document = AsyncAPI(*brokers, schema_version="3.0.0").to_specification().to_jsonable()
    groups = {
        channel: getattr(sub, "group_id", None)
        for b in brokers
        for sub in b.subscribers
        for channel in sub.schema()
    }
    found: list[_Operation] = []
    for op in document.get("operations", {}).values():
        channel_id = op["channel"]["$ref"].split("/")[-1]
        channel = document["channels"][channel_id]
        found.append(
            _Operation(
                service=service,
                action=op["action"],
                topic=by_name[channel["address"]],
                summary=channel.get("description"),
                group_id=groups.get(channel_id),
            )
        )
    return found


def _retry_queue_operations() -> list[_Operation]:
    """crm_sync's delay queue reads the retry topics with a plain aiokafka consumer."""
    from services.crm_sync.names import GHL_CONSUMER

    return [
        _Operation("crm_sync", "receive", spec, "The delay queue: each message is written to GHL when due.",
                   f"{GROUP_PREFIX}{GHL_CONSUMER}.retry")
        for spec in CRM_RETRY_TOPICS
    ]  # fmt: skip


def _message(model: type[EventEnvelope]) -> dict[str, Any]:
    return {
        "name": model.EVENT_TYPE,
        "title": model.__name__,
        "summary": (model.__doc__ or "").strip().splitlines()[0],
        "contentType": "application/json",
        "headers": {"$ref": "#/components/schemas/EventHeaders"},
        "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
        "correlationId": {"location": "$message.header#/correlation-id"},
        "bindings": {"kafka": {"key": _key_schema(model), "bindingVersion": "0.4.0"}},
        "x-schema-version": schema_version_of(model),
    }


def _raw_message(spec: TopicSpec) -> dict[str, Any]:
    dead = spec == DEAD_LETTER
    return {
        "name": spec.name,
        "title": "DeadLetter" if dead else "ForwardedEvent",
        "summary": "The failed message's body and key unchanged, its headers plus dlq-* headers."
        if dead
        else "An event of lead.qualified, buyer.matched, seller.analyzed or seller.consultation_requested, "
        "body, key and headers unchanged (crm_sync's own topic).",
        "contentType": "application/json",
        "headers": {"$ref": f"#/components/schemas/{'DeadLetterHeaders' if dead else 'EventHeaders'}"},
        "payload": {"description": "The original message body (not necessarily valid JSON on dead_letter)."},
        "bindings": {"kafka": {"key": _key_schema(None), "bindingVersion": "0.4.0"}},
    }


def build_asyncapi(version: str = "1.0.0") -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of every topic, generated from the services' brokers."""
    operations: list[_Operation] = _retry_queue_operations()
    schemas: dict[str, Any] = {}
    for service, brokers in service_brokers(placeholder_settings()).items():
        operations += _operations(service, brokers)
    events = {model.EVENT_TYPE: model for model in event_models().values()}
    for name, header_model in (("EventHeaders", EventHeaders), ("DeadLetterHeaders", DeadLetterHeaders)):
        schemas[name] = header_model.model_json_schema(by_alias=True)
    for model in events.values():  # the gateway-only events and any not yet subscribed
        for name, schema in model.model_json_schema(ref_template="#/components/schemas/{model}").items():
            if name == "$defs":
                schemas.update(schema)
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        body.pop("$defs", None)
        schemas[model.__name__] = body

    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in ALL_TOPICS:
        event = events.get(spec.name)
        message_id = event.__name__ if event else ("DeadLetter" if spec == DEAD_LETTER else "ForwardedEvent")
        messages[message_id] = _message(event) if event else _raw_message(spec)
        channels[spec.name] = {
            "address": spec.name,
            "title": spec.name,
            "description": f"{spec.description} {spec.partitions} partitions; {KEY_ORDERING}",
            "messages": {message_id: {"$ref": f"#/components/messages/{message_id}"}},
            "bindings": {
                "kafka": {"topic": spec.name, "partitions": spec.partitions, "bindingVersion": "0.4.0"}
            },
        }

    document_ops: dict[str, Any] = {}
    for op in sorted(operations, key=lambda o: (o.topic.name, o.action, o.service, o.group_id or "")):
        channel = channels[op.topic.name]
        message_id = next(iter(channel["messages"]))
        # Two consumer groups of one service on one topic (crm_sync's GHL and webhook halves)
        # are two operations, named by the group's middle part.
        tail = (op.group_id or "").removeprefix(GROUP_PREFIX).removeprefix(f"{op.service}.")
        tail = tail.removesuffix(f".{op.topic.name}").removesuffix(op.service)
        op_id = ".".join(part for part in (op.service, tail, op.action, op.topic.name) if part)
        verb = "publishes to" if op.action == "send" else "consumes"
        entry: dict[str, Any] = {
            "action": op.action,
            "channel": {"$ref": f"#/channels/{op.topic.name}"},
            "title": f"{op.service} {verb} {op.topic.name}",
            "tags": [{"name": op.service}],
            "messages": [{"$ref": f"#/channels/{op.topic.name}/messages/{message_id}"}],
        }
        if op.summary:
            entry["summary"] = op.summary
        if op.group_id:
            entry["bindings"] = {
                "kafka": {"groupId": {"type": "string", "enum": [op.group_id]}, "bindingVersion": "0.4.0"}
            }
        document_ops.setdefault(op_id, entry)

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Jorge Platform events",
            "version": version,
            "description": "Every Kafka topic of the platform: who publishes, who consumes, each event's "
            "envelope, headers and key. Generated from the services' code by `jorge events schemas "
            "--write`; how to consume is in docs/EVENTS.md. Topic names take KAFKA_TOPIC_PREFIX and "
            "consumer groups KAFKA_CONSUMER_GROUP_PREFIX (jorge. by default).",
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "kafka:9092",
                "protocol": "kafka",
                "description": "Your cluster (KAFKA_BOOTSTRAP_SERVERS).",
            }
        },
        "channels": channels,
        "operations": document_ops,
        "components": {"messages": messages, "schemas": dict(sorted(schemas.items()))},
    }


def dump_json(document: dict[str, Any]) -> str:
    """The committed JSON form: stable key order as built, two-space indent, trailing newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def dump_yaml(document: dict[str, Any]) -> str:
    """The committed YAML form of the AsyncAPI document."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True  # no &anchors: a shared dict is written out each time

    header = f"# Generated by `{REGENERATE}` from the services' code; do not edit.\n"
    return header + yaml.dump(document, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=110)


def artifacts() -> dict[Path, str]:
    """Every committed contract file and its current content."""
    document = build_asyncapi()
    files = {ASYNCAPI_YAML: dump_yaml(document), ASYNCAPI_JSON: dump_json(document)}
    for event_type, (version, schema) in current_event_schemas().items():
        files[CONTRACT_DIR / f"{event_type}.v{version}.json"] = dump_json(schema)
    return files


def stale_artifacts(files: dict[Path, str]) -> list[Path]:
    """The committed files that are missing or differ from what the code generates now."""
    return [
        path for path, text in files.items() if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]


def committed_event_schemas() -> dict[str, dict[int, dict[str, Any]]]:
    """Event type -> schema version -> the committed JSON Schema."""
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for path in sorted(CONTRACT_DIR.glob("*.v*.json")):
        event_type, _, version = path.name.removesuffix(".json").rpartition(".v")
        found.setdefault(event_type, {})[int(version)] = json.loads(path.read_text(encoding="utf-8"))
    return found
