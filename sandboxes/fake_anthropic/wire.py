"""Wire-level pieces of the fake Messages API: scripted behaviours, token estimate, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse

Responder = Callable[[dict[str, Any]], dict[str, Any]]
"""Builds the tool input from the request body (messages, system, tools)."""


@dataclass(frozen=True)
class Answer:
    """Answer normally with the responder's tool input."""


@dataclass(frozen=True)
class RateLimited:
    """429 rate_limit_error with a retry-after header."""

    retry_after: float = 0.05


@dataclass(frozen=True)
class Overloaded:
    """529 overloaded_error with a retry-after header."""

    retry_after: float = 0.05


@dataclass(frozen=True)
class Slow:
    """Answer normally, but only after ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class MalformedToolInput:
    """A tool_use block whose input breaks the tool's schema."""

    tool_input: dict[str, Any] = field(
        default_factory=lambda: {"intent": "purchase", "temperature": 451, "next_action": None}
    )


Behaviour = Answer | RateLimited | Overloaded | Slow | MalformedToolInput


def minimal_answer(body: dict[str, Any]) -> dict[str, Any]:
    """A valid but uninformed qualification: the default when no responder is given."""
    return {
        "intent": "unknown_intent",
        "temperature": "cold",
        "temperature_reasons": ["fake server: no responder configured"],
        "next_action": "Ask what they are looking for",
        "confidence": 0.1,
        "suggested_reply": "Thanks for reaching out! Are you looking to buy, sell or rent?",
    }


def estimate_tokens(value: Any) -> int:
    """One token per four characters of the value's JSON (at least one)."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return max(1, len(text) // 4)


def error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def prompt_parts(body: dict[str, Any]) -> list[Any]:
    """The prompt in the API's order (tools, system, messages), one part per cacheable block."""
    system = body.get("system") or []
    if isinstance(system, str):
        system = [{"type": "text", "text": system}]
    parts: list[Any] = [*(body.get("tools") or []), *system]
    for message in body.get("messages") or []:
        content = message.get("content")
        parts.extend(content if isinstance(content, list) else [content])
    return parts


def user_text(body: dict[str, Any]) -> str:
    """Every text the user turns carry, joined (where script markers are looked for)."""
    texts = []
    for message in body.get("messages") or []:
        content = message.get("content")
        for block in content if isinstance(content, list) else [content]:
            texts.append(block if isinstance(block, str) else str(block.get("text", "")))
    return "\n".join(texts)
