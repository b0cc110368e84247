"""GHL's official OpenAPI specs as a contract: find the operation of a call, check its request
(headers, query, JSON or form body) and its answer against the vendored specs in ``openapi/``.

Requests are checked as GHL checks them: required fields, types, enums, and no property the
spec does not name (GHL answers 422 "property X should not exist"). Answers are checked against
the response schema of their status, open to extra properties (GHL adds fields freely). Any
new call (tasks, workflows...) is covered as soon as it is in a vendored spec: nothing here
names an operation. OpenAPI 3.0's ``nullable`` becomes a JSON Schema ``null`` type.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urljoin

from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SPEC_FILES = ("contacts.json", "opportunities.json", "locations.json", "oauth.json")
_BASE = "https://ghl.spec/apps/"
_COMMON = "https://ghl.spec/common/common-schemas.json"
_METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of a vendored spec."""

    spec: str
    method: str
    template: str
    definition: dict[str, Any]
    pattern: re.Pattern[str]

    @property
    def operation_id(self) -> str:
        return str(self.definition.get("operationId", f"{self.method} {self.template}"))

    @property
    def scopes(self) -> tuple[str, ...]:
        """The OAuth scopes the spec says this call needs."""
        return tuple(s for entry in self.definition.get("security", []) for s in entry.get("bearer", []))


@dataclass(frozen=True, slots=True)
class Problem:
    """Why GHL refuses a request: the status and messages of GHL's own answer."""

    status: int
    messages: tuple[str, ...]

    def body(self) -> dict[str, Any]:
        """GHL's error body for it (common-schemas.json's BadRequestDTO / UnprocessableDTO)."""
        if self.status == 422:
            return {"statusCode": 422, "message": list(self.messages), "error": "Unprocessable Entity"}
        return {"statusCode": self.status, "message": "; ".join(self.messages)}


def _load(name: str) -> Any:
    return json.loads(resources.files("sandboxes.ghl").joinpath("openapi", name).read_text("utf-8"))


def _prepare(node: Any, *, closed: bool) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema; ``closed`` forbids properties the spec does not name."""
    if isinstance(node, list):
        return [_prepare(item, closed=closed) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _prepare(value, closed=closed) for key, value in node.items()}
    if out.pop("nullable", False) is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if closed and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


class Contract:
    """The vendored specs, loaded once; check requests and answers against them."""

    def __init__(self) -> None:
        self._specs = {name: _load(name) for name in SPEC_FILES}
        common = _load("common-schemas.json")
        self._registries = {
            closed: Registry().with_resources(
                [
                    (_BASE + name, DRAFT202012.create_resource(_prepare(spec, closed=closed)))
                    for name, spec in self._specs.items()
                ]
                + [(_COMMON, DRAFT202012.create_resource(_prepare(common, closed=closed)))]
            )
            for closed in (True, False)
        }
        operations = []
        for name, spec in self._specs.items():
            for template, item in spec["paths"].items():
                for method, definition in item.items():
                    if method in _METHODS:
                        regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template.rstrip("/")))
                        pattern = re.compile(f"^{regex}/?$")
                        operations.append(Operation(name, method.upper(), template, definition, pattern))
        # Literal segments before parameters: /contacts/search/duplicate is not /contacts/{id}.
        operations.sort(key=lambda op: (op.template.count("{"), -len(op.template)))
        self._operations = operations

    def operation(self, method: str, path: str) -> Operation | None:
        """The operation a call is, or None if no vendored spec describes it."""
        return next(
            (op for op in self._operations if op.method == method.upper() and op.pattern.match(path)), None
        )

    def _validator(self, op: Operation, schema: dict[str, Any], *, closed: bool) -> Draft202012Validator:
        absolute = _absolute_refs(schema, _BASE + op.spec)
        return Draft202012Validator(_prepare(absolute, closed=closed), registry=self._registries[closed])

    def check_request(
        self,
        op: Operation,
        headers: dict[str, str],
        query: dict[str, str],
        body: Any,
        content_type: str = "application/json",
    ) -> Problem | None:
        """GHL's refusal of this request, or None if the spec accepts it."""
        lowered = {k.lower(): v for k, v in headers.items()}
        params = op.definition.get("parameters", [])
        for param in params:
            if param.get("in") != "header":
                continue
            value = lowered.get(param["name"].lower())
            allowed = param.get("schema", {}).get("enum")
            if value is None and param.get("required"):
                return Problem(400, (f"{param['name']} header was not found",))
            if value is not None and allowed and value not in allowed:
                return Problem(400, (f"{param['name']} header must be one of {', '.join(allowed)}",))
        messages: list[str] = []
        declared = {p["name"]: p for p in params if p.get("in") == "query"}
        messages += [f"property {name} should not exist" for name in query if name not in declared]
        for name, param in declared.items():
            if param.get("required") and not query.get(name):
                messages.append(f"{name} should not be empty")
            allowed = param.get("schema", {}).get("enum")
            if name in query and allowed and query[name] not in allowed:
                messages.append(f"{name} must be one of the following values: {', '.join(allowed)}")
        request_body = op.definition.get("requestBody")
        if request_body is None:
            if body not in (None, b"", {}):
                messages.append("request body should not exist")
        else:
            media: dict[str, Any] = request_body.get("content", {})
            described: dict[str, Any] = media.get(content_type) or next(iter(media.values()), {})
            schema = described.get("schema")
            if body is None and request_body.get("required"):
                messages.append("request body should not be empty")
            elif schema is not None:
                errors = self._validator(op, schema, closed=True).iter_errors(body)
                messages += [m for error in errors for m in _messages(error)]
        return Problem(422, tuple(dict.fromkeys(messages))) if messages else None

    def check_response(self, op: Operation, status: int, body: Any) -> list[str]:
        """What in this answer the spec's schema for its status does not allow (empty: fine).
        Statuses the operation does not describe (429, 5xx...) are not checked."""
        answer = op.definition.get("responses", {}).get(str(status), {})
        schema = answer.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return []
        errors = self._validator(op, schema, closed=False).iter_errors(body)
        return [f"{op.operation_id} {status}: {m}" for error in errors for m in _messages(error)]


def _absolute_refs(node: Any, base: str) -> Any:
    """An operation's schema taken out of its spec: its ``$ref``s made absolute against the spec."""
    if isinstance(node, list):
        return [_absolute_refs(item, base) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _absolute_refs(value, base) for key, value in node.items()}
    if isinstance(out.get("$ref"), str):
        out["$ref"] = urljoin(base, out["$ref"])
    return out


def _where(error: ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path)


def _messages(error: ValidationError) -> list[str]:
    """class-validator's wording, as GHL answers it (field names only, never values)."""
    where = _where(error)
    prefix = f"{where}." if where else ""
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        return [f"property {prefix}{name} should not exist" for name in error.instance if name not in known]
    if error.validator == "required" and isinstance(error.validator_value, list):
        present = error.instance if isinstance(error.instance, dict) else {}
        absent = [name for name in error.validator_value if name not in present]
        return [f"{prefix}{name} should not be empty" for name in absent]
    if error.validator == "type":
        kind = error.validator_value
        kinds = " or ".join(kind) if isinstance(kind, list) else str(kind)
        return [f"{where or 'body'} must be a {kinds}"]
    if error.validator == "enum":
        values = ", ".join(str(v) for v in error.validator_value)
        return [f"{where} must be one of the following values: {values}"]
    if error.validator in ("anyOf", "oneOf") and error.context:
        deepest = max(error.context, key=lambda e: len(e.absolute_path))
        return _messages(deepest)
    return [f"{where or 'body'} is invalid ({error.validator})"]


@cache
def contract() -> Contract:
    """The one Contract of this process (loading the specs takes a moment)."""
    return Contract()
