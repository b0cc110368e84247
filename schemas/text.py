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


#: A string PostgreSQL can store and every consumer can decode.
Text = Annotated[str, AfterValidator(_storable)]
