"""Free text as the API accepts it: anything a person can type, nothing a database refuses."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


def is_storable(value: str) -> bool:
    """True if PostgreSQL can store ``value`` and every consumer decode it: no NUL, no lone
    surrogate (for text that does not pass through a model, e.g. a GHL webhook's fields)."""
    try:
        _storable(value)
    except ValueError:
        return False
    return True


#: A string PostgreSQL can store and every consumer can decode.
Text = Annotated[str, AfterValidator(_storable)]
