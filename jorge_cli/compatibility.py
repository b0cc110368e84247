"""Schema-registry rules for event schemas: what a change may not do without a new schema version.

A consumer that knows an event's current model must still read every event already on the
topics (Confluent's BACKWARD_TRANSITIVE), and consumers we do not know of must keep finding the
fields they read. So, against the committed schema of the same version, a change may not:
remove or rename a property, make a property required that was not, narrow a type (fewer JSON
types, dropping null, a const or enum where there was none), remove an enum value, or tighten a
bound (minimum, maximum, lengths, item counts, pattern, format). Adding optional properties,
adding enum values, widening types and loosening bounds are allowed.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

JsonSchema = dict[str, Any]
_ALL_TYPES = frozenset({"null", "boolean", "object", "array", "number", "integer", "string"})
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")


def breaking_changes(old: JsonSchema, new: JsonSchema) -> list[str]:
    """Why ``new`` cannot replace ``old`` under the same schema version (empty when it can)."""
    problems: list[str] = []
    _compare(old, old, new, new, "$", problems, set())
    return list(dict.fromkeys(problems))  # integer and number branches may report the same


def _resolve(root: JsonSchema, node: JsonSchema) -> JsonSchema:
    while "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local $refs are supported, not {ref}")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _branches(root: JsonSchema, node: JsonSchema) -> list[JsonSchema]:
    node = _resolve(root, node)
    for key in ("anyOf", "oneOf"):
        if key in node:
            return [b for sub in node[key] for b in _branches(root, sub)]
    return [node]


def _types(node: JsonSchema) -> set[str]:
    if "const" in node:
        return {_json_type(node["const"])}
    if "enum" in node:
        return {_json_type(value) for value in node["enum"]}
    declared = node.get("type")
    if declared is None:
        return set(_ALL_TYPES)
    types = {declared} if isinstance(declared, str) else set(declared)
    return types | {"integer"} if "number" in types else types


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names[type(value)]


def _values(node: JsonSchema) -> list[Any] | None:
    if "const" in node:
        return [node["const"]]
    return list(node["enum"]) if "enum" in node else None


def _compare(
    old_root: JsonSchema,
    old: JsonSchema,
    new_root: JsonSchema,
    new: JsonSchema,
    path: str,
    problems: list[str],
    seen: set[tuple[str, str, str]],
) -> None:
    marker = (str(old.get("$ref")), str(new.get("$ref")), path)
    if "$ref" in old and marker in seen:
        return
    seen.add(marker)
    old_branches, new_branches = _branches(old_root, old), _branches(new_root, new)
    old_types = set().union(*(_types(b) for b in old_branches))
    new_types = set().union(*(_types(b) for b in new_branches))
    if lost := old_types - new_types:
        problems.append(f"{path}: type narrowed, no longer accepts {', '.join(sorted(lost))}")
    for json_type in sorted(old_types & new_types):
        old_b = [b for b in old_branches if json_type in _types(b)]
        new_b = [b for b in new_branches if json_type in _types(b)]
        _compare_values(old_b, new_b, path, problems)
        if len(old_b) == 1 and len(new_b) == 1:
            _compare_same_type(old_root, old_b[0], new_root, new_b[0], path, json_type, problems, seen)


def _compare_values(old_b: list[JsonSchema], new_b: list[JsonSchema], path: str, problems: list[str]) -> None:
    new_values = [_values(b) for b in new_b]
    if any(values is None for values in new_values):
        return  # the new schema accepts any value of this type
    allowed = {json.dumps(x) for values in new_values for x in values or ()}
    old_values = [_values(b) for b in old_b]
    if any(values is None for values in old_values):
        problems.append(f"{path}: now restricted to the values {', '.join(sorted(allowed))}")
        return
    if removed := sorted({json.dumps(x) for values in old_values for x in values or ()} - allowed):
        problems.append(f"{path}: enum values removed: {', '.join(removed)}")


def _compare_same_type(
    old_root: JsonSchema,
    old: JsonSchema,
    new_root: JsonSchema,
    new: JsonSchema,
    path: str,
    json_type: str,
    problems: list[str],
    seen: set[tuple[str, str, str]],
) -> None:
    for key in _LOWER_BOUNDS:
        if key in new and (key not in old or new[key] > old[key]):
            problems.append(f"{path}: {key} tightened to {new[key]}")
    for key in _UPPER_BOUNDS:
        if key in new and (key not in old or new[key] < old[key]):
            problems.append(f"{path}: {key} tightened to {new[key]}")
    for key in ("pattern", "format"):
        if key in new and new.get(key) != old.get(key):
            problems.append(f"{path}: {key} changed to {new[key]!r}")
    if json_type == "object":
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        for name in sorted(set(old_props) - set(new_props)):
            problems.append(f"{path}.{name}: property removed or renamed")
        newly_required = set(new.get("required", ())) - set(old.get("required", ()))
        for name in sorted(newly_required):
            problems.append(f"{path}.{name}: property is now required")
        for name in sorted(set(old_props) & set(new_props)):
            _compare(old_root, old_props[name], new_root, new_props[name], f"{path}.{name}", problems, seen)
    if json_type == "array" and isinstance(old.get("items"), dict) and isinstance(new.get("items"), dict):
        _compare(old_root, old["items"], new_root, new["items"], f"{path}[]", problems, seen)


def version_problems(
    current: dict[str, tuple[int, JsonSchema]],
    committed: dict[str, dict[int, JsonSchema]],
    upcasters: Collection[tuple[str, int]],
) -> list[str]:
    """What breaks consumers between the models (event type -> version, schema) and the committed
    schemas (event type -> version -> schema): a breaking change within a version, a version gone
    back, an older version no upcaster chain reads, an event type removed."""
    problems: list[str] = []
    for event_type, (version, schema) in current.items():
        versions = committed.get(event_type, {})
        if newer := [v for v in versions if v > version]:
            problems.append(f"{event_type}: schema version went back to {version} from {max(newer)}")
        if version in versions:
            problems += [f"{event_type} v{version} {p}" for p in breaking_changes(versions[version], schema)]
        for old in sorted(v for v in versions if v < version):
            if missing := [v for v in range(old, version) if (event_type, v) not in upcasters]:
                problems.append(
                    f"{event_type}: consumers cannot read v{old} events: no upcaster from v{missing[0]} "
                    "(schemas/registry.py UPCASTERS)"
                )
    for event_type in sorted(set(committed) - set(current)):
        problems.append(f"{event_type}: event type removed while consumers may still read it")
    return problems
