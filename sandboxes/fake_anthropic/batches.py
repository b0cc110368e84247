"""The Message Batches endpoints of the fake API: create, retrieve (ends after N polls), results."""

from __future__ import annotations

import itertools
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandboxes.fake_anthropic.wire import Answer, Overloaded, RateLimited, Slow, error, user_text

if TYPE_CHECKING:
    from sandboxes.fake_anthropic.server import FakeAnthropic


class BatchStore:
    """Batches of one fake server; each request is answered like a single call, when it ends."""

    def __init__(self, fake: FakeAnthropic) -> None:
        self._fake = fake
        self._batches: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    async def create(self, request: Request) -> Response:
        body = await self._fake.checked_body(request)
        if isinstance(body, JSONResponse):
            return body
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return error(400, "invalid_request_error", "requests: must be a non-empty list")
        batch_id = f"msgbatch_fake{next(self._ids):06d}"
        now = datetime.now(UTC)
        with self._lock:
            self._batches[batch_id] = {"requests": requests, "polls": 0, "created_at": now, "results": None}
        return JSONResponse(self._view(batch_id, str(request.base_url)))

    def _view(self, batch_id: str, base_url: str) -> dict[str, Any]:
        batch = self._batches[batch_id]
        ended = batch["results"] is not None
        count = len(batch["requests"])
        succeeded = sum(r["result"]["type"] == "succeeded" for r in batch["results"] or [])
        return {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": {
                "processing": 0 if ended else count,
                "succeeded": succeeded,
                "errored": count - succeeded if ended else 0,
                "canceled": 0,
                "expired": 0,
            },
            "created_at": batch["created_at"].isoformat(),
            "expires_at": (batch["created_at"] + timedelta(hours=24)).isoformat(),
            "ended_at": datetime.now(UTC).isoformat() if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{base_url.rstrip('/')}/v1/messages/batches/{batch_id}/results"
            if ended
            else None,
        }

    async def retrieve(self, request: Request) -> Response:
        batch_id = request.path_params["batch_id"]
        if batch_id not in self._batches:
            return error(404, "not_found_error", f"no batch {batch_id}")
        batch = self._batches[batch_id]
        batch["polls"] += 1
        if batch["results"] is None and batch["polls"] >= self._fake.batch_polls_until_ended:
            batch["results"] = [self._result(item) for item in batch["requests"]]
        return JSONResponse(self._view(batch_id, str(request.base_url)))

    def _result(self, item: dict[str, Any]) -> dict[str, Any]:
        params = item.get("params") or {}
        if not all(k in params for k in ("model", "max_tokens", "messages")):
            error = {
                "type": "invalid_request_error",
                "message": "params: model, max_tokens, messages required",
            }
            return {
                "custom_id": item.get("custom_id"),
                "result": {"type": "errored", "error": {"type": "error", "error": error}},
            }
        behaviour = self._fake.next_behaviour(user_text(params))
        if isinstance(behaviour, RateLimited | Overloaded | Slow):
            behaviour = Answer()  # a batch has no per-request rate limits or latency
        self._fake.requests.append(params)
        message = self._fake.message_for(params, behaviour)
        return {"custom_id": item.get("custom_id"), "result": {"type": "succeeded", "message": message}}

    async def results(self, request: Request) -> Response:
        batch = self._batches.get(request.path_params["batch_id"])
        if batch is None or batch["results"] is None:
            return error(404, "not_found_error", "batch results are not available yet")
        lines = "".join(json.dumps(result) + "\n" for result in batch["results"])
        return Response(lines, media_type="application/binary")
