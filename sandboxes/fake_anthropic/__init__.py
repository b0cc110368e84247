"""A local server speaking the Anthropic Messages API, so the real SDK can be tested offline.

It answers ``POST /v1/messages`` with a tool-use message (or a scripted failure: 429 and 529
with ``retry-after``, slow answers, malformed tool input), reports usage with cache fields
(a prefix ending at a ``cache_control`` breakpoint is written once, then read), counts tokens
(``/v1/messages/count_tokens``) and runs Message Batches (``/v1/messages/batches``).

Tokens are estimated as one per four characters of the JSON the request carries: enough to
make prompt-size comparisons and cache accounting real, not to match Anthropic's tokenizer.
Run it alone with ``python -m sandboxes.fake_anthropic --port 8765``.
"""

from sandboxes.fake_anthropic.server import FakeAnthropic
from sandboxes.fake_anthropic.wire import (
    Answer,
    Behaviour,
    MalformedToolInput,
    Overloaded,
    RateLimited,
    Responder,
    Slow,
    estimate_tokens,
    minimal_answer,
)

__all__ = [
    "Answer",
    "Behaviour",
    "FakeAnthropic",
    "MalformedToolInput",
    "Overloaded",
    "RateLimited",
    "Responder",
    "Slow",
    "estimate_tokens",
    "minimal_answer",
]
