"""Claude qualification engine: the Anthropic SDK adapter behind the QualificationEngine port.

One lead = one forced tool call, validated by the Qualification model. 429 and 529 are retried
with backoff (tenacity; the server's retry-after is honoured, bounded); a timeout, an invalid
answer or any other API failure lets the rules engine decide, and the result says so.
A semaphore bounds calls in flight; leads beyond it wait (and so does Kafka consumption).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import anthropic
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from jorge_runtime.flags import FeatureFlags
from jorge_runtime.observability.metrics import (
    CLAUDE_COST,
    CLAUDE_DURATION,
    CLAUDE_FALLBACKS,
    CLAUDE_REQUESTS,
    CLAUDE_TOKENS,
    CLAUDE_TOKENS_SAVED,
    EXTERNAL_UP,
)
from jorge_runtime.settings import Settings
from schemas.leads import LeadToQualify
from schemas.qualification import Qualification, TokenUsage
from services.qualifier.breaker import CircuitBreaker
from services.qualifier.engine import QualificationEngine
from services.qualifier.pricing import estimate_cost
from services.qualifier.prompts import InvalidAnswer, build_request, estimate_request_tokens, parse_answer
from services.qualifier.routing import choose_model
from services.qualifier.rules import qualify_lead
from services.qualifier.skills import ALL_SKILLS, select_skills

log = logging.getLogger(__name__)

ENGINE_NAME = "claude"
MAX_RETRY_AFTER_SECONDS = 10.0


@dataclass(frozen=True)
class ClaudeConfig:
    """What the engine needs from Settings."""

    model: str = "claude-sonnet-4-6"
    small_model: str = "claude-haiku-4-5"
    timeout: float = 30.0
    max_concurrency: int = 4
    max_attempts: int = 4
    max_tokens: int = 1024
    cache_ttl: str = "5m"

    @classmethod
    def from_settings(cls, settings: Settings) -> ClaudeConfig:
        """CLAUDE_* settings."""
        return cls(
            model=settings.claude_model,
            small_model=settings.claude_small_model,
            timeout=settings.claude_timeout,
            max_concurrency=settings.claude_max_concurrency,
            max_attempts=settings.claude_max_attempts,
            max_tokens=settings.claude_max_tokens,
            cache_ttl=settings.claude_prompt_cache_ttl,
        )


def create_client(settings: Settings) -> anthropic.AsyncAnthropic:
    """An SDK client without its own retries (tenacity retries, so attempts are bounded once)."""
    assert settings.anthropic_api_key is not None
    return anthropic.AsyncAnthropic(
        api_key=settings.anthropic_api_key.get_secret_value(),
        base_url=settings.anthropic_base_url or None,
        timeout=settings.claude_timeout,
        max_retries=0,
    )


def is_retryable(exc: BaseException) -> bool:
    """429 rate limits and 529 overloads are worth another try; nothing else is."""
    return isinstance(exc, anthropic.APIStatusError) and exc.status_code in (429, 529)


def wait_for_retry(max_wait: float = MAX_RETRY_AFTER_SECONDS) -> Callable[[RetryCallState], float]:
    """Tenacity wait: the server's retry-after when given (capped), else exponential with jitter."""
    fallback = wait_exponential_jitter(multiplier=0.5, max=max_wait, jitter=0.5)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, anthropic.APIStatusError):
            try:
                return min(max(float(exc.response.headers.get("retry-after", "")), 0.0), max_wait)
            except ValueError:
                pass
        return fallback(state)

    return wait


def usage_of(message: Any, model: str, cache_ttl: str, *, batch: bool = False) -> TokenUsage:
    """TokenUsage (with estimated cost) of one SDK Message."""
    usage = message.usage
    counts = {
        "input_tokens": usage.input_tokens or 0,
        "output_tokens": usage.output_tokens or 0,
        "cache_read_tokens": getattr(usage, "cache_read_input_tokens", None) or 0,
        "cache_write_tokens": getattr(usage, "cache_creation_input_tokens", None) or 0,
    }
    return TokenUsage(**counts, cost_usd=estimate_cost(model, **counts, cache_ttl=cache_ttl, batch=batch))


def record_usage(model: str, usage: TokenUsage) -> None:
    """Export one call's tokens and cost."""
    for kind, value in (
        ("input", usage.input_tokens),
        ("output", usage.output_tokens),
        ("cache_read", usage.cache_read_tokens),
        ("cache_write", usage.cache_write_tokens),
    ):
        CLAUDE_TOKENS.labels(model, kind).inc(value)
    CLAUDE_COST.labels(model).inc(usage.cost_usd)


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | anthropic.APITimeoutError):
        return "timeout"
    if isinstance(exc, anthropic.APIStatusError) and exc.status_code == 429:
        return "rate_limited"
    if isinstance(exc, anthropic.APIStatusError) and exc.status_code == 529:
        return "overloaded"
    return "api_error"


def _count_retried(model: str, state: RetryCallState) -> None:
    """A 429/529 about to be retried counts as one request with that outcome."""
    exc = state.outcome.exception() if state.outcome else None
    CLAUDE_REQUESTS.labels(model, _outcome(exc) if exc else "api_error").inc()


class ClaudeQualificationEngine(QualificationEngine):
    """Qualifies with Claude; never raises for an API problem: the rules engine answers then."""

    name = ENGINE_NAME
    costly = True

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        config: ClaudeConfig,
        flags: FeatureFlags | None = None,
        today: Callable[[], date] = date.today,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._client = client
        self._config = config
        self._flags = flags or FeatureFlags()
        self._today = today
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._breaker = breaker or CircuitBreaker()

    @property
    def model(self) -> str:
        """The configured (large) model."""
        return self._config.model

    def plan(self, lead: LeadToQualify) -> tuple[dict[str, Any], Qualification]:
        """The request for ``lead`` (model and skills chosen by the flags) and the rules' reading."""
        hint = qualify_lead(lead, today=self._today())
        flags = self._flags
        route = choose_model(
            lead,
            hint,
            large_model=self._config.model,
            small_model=self._config.small_model,
            mesh_enabled=flags.agent_mesh,
            routing=flags.agent_mesh_routing,
        )
        skills = select_skills(lead, hint) if flags.progressive_skills else ALL_SKILLS
        request = build_request(
            lead,
            model=route.model,
            skills=skills,
            max_tokens=self._config.max_tokens,
            cache_ttl=self._config.cache_ttl,
            today=self._today(),
        )
        if flags.agent_mesh:
            flags.record_use("ENABLE_AGENT_MESH", model=route.model, route=route.reason)
        if flags.progressive_skills:
            flags.record_use("ENABLE_PROGRESSIVE_SKILLS", skills=list(skills))
        return request, hint

    async def qualify(self, lead: LeadToQualify) -> Qualification:
        """Qualify with Claude, or with the rules when Claude cannot answer in time or validly."""
        request, hint = self.plan(lead)
        model = request["model"]
        async with self._slots:
            if not self._breaker.allow():
                return self._fallback(hint, model, "circuit_open", None, None)
            started = time.monotonic()
            try:
                async with asyncio.timeout(self._config.timeout):
                    message = await self._create(request)
            except (TimeoutError, anthropic.AnthropicError) as exc:
                self._breaker.record(ok=False)
                return self._fallback(hint, model, _outcome(exc), None, exc)
            finally:
                CLAUDE_DURATION.labels(model).observe(time.monotonic() - started)
        self._breaker.record(ok=True)
        EXTERNAL_UP.labels("qualifier", "claude").set(1)
        usage = usage_of(message, model, self._config.cache_ttl)
        record_usage(model, usage)
        self._track_savings(lead, request, usage, model)
        try:
            qualification = parse_answer(message.content, engine=ENGINE_NAME, model=model, usage=usage)
        except InvalidAnswer as exc:
            return self._fallback(hint, model, "invalid_answer", usage, exc)
        CLAUDE_REQUESTS.labels(model, "ok").inc()
        return qualification

    async def _create(self, request: dict[str, Any]) -> Any:
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self._config.max_attempts),
            wait=wait_for_retry(),
            before_sleep=lambda state: _count_retried(request["model"], state),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._client.messages.create(**request)
        raise AssertionError("unreachable: tenacity reraises the last error")

    def _fallback(
        self,
        hint: Qualification,
        model: str,
        reason: str,
        usage: TokenUsage | None,
        exc: BaseException | None,
    ) -> Qualification:
        if reason != "circuit_open":  # otherwise no call was made
            CLAUDE_REQUESTS.labels(model, reason).inc()
        CLAUDE_FALLBACKS.labels(reason).inc()
        if reason in ("timeout", "api_error", "overloaded"):
            EXTERNAL_UP.labels("qualifier", "claude").set(0)
        # The exception text may quote the lead's message: log its type only.
        error = type(exc).__name__ if exc else None
        log.warning("claude fallback to rules", extra={"reason": reason, "model": model, "error": error})
        return hint.model_copy(update={"model": model, "usage": usage, "fallback_reason": reason})

    def _track_savings(
        self, lead: LeadToQualify, request: dict[str, Any], usage: TokenUsage, model: str
    ) -> None:
        """Tokens progressive skills saved: the sent prompt scaled by the full prompt's size ratio."""
        if not (self._flags.progressive_skills and self._flags.track_token_savings):
            return
        full = build_request(lead, model=model, skills=ALL_SKILLS, today=self._today())
        sent_tokens = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
        ratio = estimate_request_tokens(full) / estimate_request_tokens(request)
        saved = max(0, round(sent_tokens * ratio) - sent_tokens)
        CLAUDE_TOKENS_SAVED.labels(model).inc(saved)
        self._flags.record_use(
            "TRACK_TOKEN_SAVINGS", model=model, tokens_sent=sent_tokens, tokens_saved=saved
        )

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections."""
        await self._client.close()
