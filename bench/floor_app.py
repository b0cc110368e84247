"""The floor of the qualify benchmark: a FastAPI app that only publishes one Kafka message per request.

POST /publish reads the request body (without parsing it), publishes a fixed payload of
FLOOR_MESSAGE_BYTES bytes with six headers under a fresh key to FLOOR_TOPIC, waits for the
acknowledgement and answers 201. No authentication, no database, no validation. The producer
is built by ``jorge_runtime.kafka.broker.create_broker`` from the same settings as the gateway's
(faststream KafkaBroker, acks="all", KAFKA_ENABLE_IDEMPOTENCE, the publish timeout), so the
only difference from the gateway is everything the gateway does besides publishing.

Run: ``python -m bench.floor_app`` with KAFKA_BOOTSTRAP_SERVERS, FLOOR_TOPIC and FLOOR_PORT set
(FLOOR_HOST defaults to 127.0.0.1, FLOOR_MESSAGE_BYTES to 560). Single-process uvicorn with
the same server options as `jorge gateway`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Request, Response

from jorge_runtime.kafka.broker import create_broker
from jorge_runtime.settings import Settings, load_settings

DEFAULT_MESSAGE_BYTES = 560


def create_floor_app(settings: Settings, topic: str, message_bytes: int) -> FastAPI:
    """Build the floor app: one acks=all publish to ``topic`` per POST /publish, then 201."""
    payload = b"x" * message_bytes
    static_headers = {
        "event-type": "bench.floor",
        "schema-version": "1",
        "organization-id": "org-bench",
        "content-type": "application/json",
    }

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        broker = create_broker(settings, client_id="jorge-bench-floor", producer_only=True)
        await broker.connect()
        app.state.broker = broker
        try:
            yield
        finally:
            await broker.stop()

    app = FastAPI(title="Jorge bench floor", lifespan=lifespan)

    @app.post("/publish", status_code=201)
    async def publish(request: Request) -> Response:
        """Publish one message and answer 201 once the broker acknowledged it."""
        await request.body()
        event_id = str(uuid.uuid4())
        await request.app.state.broker.publish(
            payload,
            topic=topic,
            key=event_id.encode(),
            headers={"event-id": event_id, "correlation-id": event_id, **static_headers},
        )
        return Response(status_code=201)

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness, for the benchmark to wait on."""
        return {"status": "ok", "service": "bench-floor"}

    return app


def main() -> None:
    """Run the floor app from the environment in a single uvicorn process."""
    settings = load_settings()
    topic = os.environ["FLOOR_TOPIC"]
    message_bytes = int(os.environ.get("FLOOR_MESSAGE_BYTES", DEFAULT_MESSAGE_BYTES))
    app = create_floor_app(settings, topic, message_bytes)
    uvicorn.run(
        app,
        host=os.environ.get("FLOOR_HOST", "127.0.0.1"),
        port=int(os.environ["FLOOR_PORT"]),
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
