"""GHL custom fields: keys resolved to field ids through the location's custom-fields list
(``GET /locations/{id}/customFields``, cached per location), values formatted for the field's
``dataType`` as GHL's contacts spec describes them (``{"id", "field_value"}``; strings, or lists
of strings for checkboxes and multiple options; never a raw boolean or number)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

log = logging.getLogger(__name__)

#: How long a location's list of custom fields is trusted (a field added in GHL is seen after).
CACHE_SECONDS = 600.0
_LIST_TYPES = {"CHECKBOX", "MULTIPLE_OPTIONS"}


@dataclass(frozen=True, slots=True)
class FieldDefinition:
    """One custom field of a location, as GHL lists it."""

    id: str
    key: str
    data_type: str
    options: tuple[str, ...] = ()


def definitions(listing: Sequence[dict[str, Any]]) -> list[FieldDefinition]:
    """GHL's ``customFields`` list -> definitions (entries without an id are skipped)."""
    return [
        FieldDefinition(
            str(f["id"]),
            str(f.get("fieldKey", "")),
            str(f.get("dataType", "TEXT")).upper(),
            tuple(str(o) for o in f.get("picklistOptions") or ()),
        )
        for f in listing
        if f.get("id")
    ]


def _text(value: Any, options: tuple[str, ...]) -> str:
    if isinstance(value, bool):
        text = "Yes" if value else "No"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, datetime | date):
        text = value.isoformat()
    else:
        text = str(value)
    # A picklist takes its own spelling of the option.
    return next((o for o in options if o.lower() == text.lower()), text)


def format_value(value: Any, field: FieldDefinition) -> str | list[str]:
    """The ``field_value`` GHL expects for this field's type."""
    if field.data_type in _LIST_TYPES:
        if isinstance(value, bool):
            return [_text(True, field.options)] if value else []
        items = value if isinstance(value, list | tuple) else str(value).split(",")
        return [_text(item.strip() if isinstance(item, str) else item, field.options) for item in items]
    return _text(value, field.options)


def resolve(
    entries: Sequence[dict[str, Any]], fields: Sequence[FieldDefinition]
) -> tuple[tuple[dict[str, Any], ...], list[str]]:
    """Our ``{"key"|"id", "field_value"}`` entries -> GHL's ``{"id", "field_value"}``, and the
    references the location does not have (left out: the rest of the contact still syncs)."""
    by_key = {f.key: f for f in fields}
    by_key.update({f.key.removeprefix("contact."): f for f in fields if f.key.startswith("contact.")})
    by_id = {f.id: f for f in fields}
    out: list[dict[str, Any]] = []
    unknown: list[str] = []
    for entry in entries:
        ref = str(entry.get("id") or entry.get("key"))
        found = by_id.get(ref) or by_key.get(ref)
        if found is None:
            unknown.append(ref)
            continue
        out.append({"id": found.id, "field_value": format_value(entry.get("field_value"), found)})
    return tuple(out), unknown


class CustomFieldCatalog:
    """Per-location cache of custom-field definitions around a loader (the GHL call)."""

    def __init__(
        self,
        load: Callable[[str], Awaitable[list[FieldDefinition]]],
        *,
        ttl_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, list[FieldDefinition]]] = {}
        self._warned: set[tuple[str, str]] = set()

    async def fields(self, location_id: str) -> list[FieldDefinition]:
        cached = self._cache.get(location_id)
        if cached is not None and self._clock() - cached[0] < self._ttl:
            return cached[1]
        loaded = await self._load(location_id)
        self._cache[location_id] = (self._clock(), loaded)
        return loaded

    async def resolve(
        self, location_id: str, entries: Sequence[dict[str, Any]]
    ) -> tuple[dict[str, Any], ...]:
        """Entries with ids and typed values; unknown keys are logged once and left out."""
        if not entries:
            return ()
        resolved, unknown = resolve(entries, await self.fields(location_id))
        for ref in unknown:
            if (location_id, ref) not in self._warned:
                self._warned.add((location_id, ref))
                log.warning(
                    "GHL custom field in GHL_CUSTOM_FIELDS not found in the location; left out",
                    extra={"location_id": location_id, "custom_field": ref},
                )
        return resolved
