"""`jorge events`: the event contract (AsyncAPI document, JSON Schemas) and watching the topics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Annotated, Any

import typer

from jorge_runtime.observability.logs import redact
from jorge_runtime.settings import Settings
from schemas.topics import ALL_TOPICS, TopicNames

events = typer.Typer(help="The event contract, and decoded events as they flow.", no_args_is_help=True)


@events.command("schemas")
def schemas_command(
    write: Annotated[bool, typer.Option("--write", help="Regenerate every committed contract file.")] = False,
    allow_breaking: Annotated[
        bool,
        typer.Option(
            "--allow-breaking",
            help="Write even a breaking change within a schema version: only for versions never released.",
        ),
    ] = False,
) -> None:
    """Check (or with --write regenerate) docs/asyncapi.yaml and the JSON Schemas in schemas/contract/.

    A change that breaks consumers (see docs/EVENTS.md) is refused: bump the event's
    schema_version and register an upcaster from the old version instead.
    """
    from jorge_cli.compatibility import version_problems
    from jorge_cli.contract import (
        REGENERATE,
        REPO,
        artifacts,
        committed_event_schemas,
        current_event_schemas,
        stale_artifacts,
    )
    from schemas.registry import UPCASTERS

    problems = version_problems(current_event_schemas(), committed_event_schemas(), UPCASTERS)
    for problem in problems:
        typer.echo(f"breaking: {problem}", err=True)
    files = artifacts()
    stale = stale_artifacts(files)
    if not write:
        for path in stale:
            typer.echo(f"stale: {path.relative_to(REPO)}", err=True)
        if stale:
            typer.echo(f"regenerate with: {REGENERATE}", err=True)
        raise typer.Exit(1 if problems or stale else 0)
    if problems and not allow_breaking:
        typer.echo(
            "nothing written: bump the event's schema_version and register an upcaster "
            "(schemas/registry.py), or pass --allow-breaking for a version never released",
            err=True,
        )
        raise typer.Exit(1)
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path], encoding="utf-8")
        typer.echo(f"wrote {path.relative_to(REPO)}")
    if not stale:
        typer.echo("every contract file is current")


@events.command("tail")
def tail(
    topic: Annotated[
        str, typer.Argument(help="A topic name without KAFKA_TOPIC_PREFIX, e.g. lead.qualified.")
    ],
    organization: Annotated[
        str | None, typer.Option("--organization", help="Only this organisation's events.")
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest retained event, not at new ones.")
    ] = False,
    show_pii: Annotated[
        bool, typer.Option("--show-pii", help="Do not redact phones and emails (handle with care).")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="Stop after this many events.", min=1)] = None,
) -> None:
    """Print decoded events of TOPIC as JSON lines (phones and emails redacted), until Ctrl-C.

    Joins no consumer group and commits nothing: tailing never moves any consumer's position.
    """
    from jorge_cli.state import settings_for_command

    settings = settings_for_command()  # a ConfigError is reported by jorge_cli.main
    names = {spec.name for spec in ALL_TOPICS}
    if topic not in names:
        typer.echo(f"jorge: unknown topic {topic!r}; one of: {', '.join(sorted(names))}", err=True)
        raise typer.Exit(2)
    full = TopicNames(settings.kafka_topic_prefix)(next(s for s in ALL_TOPICS if s.name == topic))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_tail(settings, full, organization, from_beginning, show_pii, limit))


async def _tail(
    settings: Settings,
    topic: str,
    organization: str | None,
    from_beginning: bool,
    show_pii: bool,
    limit: int | None,
) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from jorge_runtime.kafka.security import kafka_client_options

    consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **kafka_client_options(settings))
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            typer.echo(f"jorge: topic {topic} does not exist (create it with `jorge topics`)", err=True)
            raise typer.Exit(1)
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        if from_beginning:
            await consumer.seek_to_beginning(*assigned)
        else:
            await consumer.seek_to_end(*assigned)
        printed = 0
        async for record in consumer:
            line = decoded(record)
            if organization is not None and line["organization_id"] != organization:
                continue
            text = json.dumps(line if show_pii else redact_values(line), ensure_ascii=False, default=str)
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
            printed += 1
            if limit is not None and printed >= limit:
                return
    finally:
        await consumer.stop()


def decoded(record: Any) -> dict[str, Any]:
    """One Kafka record as a JSON-ready line: where it is, its key and headers, and the event."""
    headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
    body: bytes = record.value or b""
    try:
        event: Any = json.loads(body)
    except ValueError:
        event = None
    line: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp,
        "key": record.key.decode(errors="replace") if record.key is not None else None,
        "event_type": headers.get("event-type"),
        "organization_id": headers.get("organization-id")
        or (event.get("organization_id") if isinstance(event, dict) else None),
        "headers": headers,
    }
    if event is None:
        line["undecodable_body"] = body.decode(errors="replace")[:2000]
    else:
        line["event"] = event
    return line


def redact_values(value: Any) -> Any:
    """``value`` with phones, emails and secrets redacted in every string (numbers, such as
    timestamps, and the JSON structure are left alone)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_values(item) for item in value]
    return value
