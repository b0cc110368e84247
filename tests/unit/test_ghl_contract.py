"""GHL's vendored OpenAPI specs as a contract: what GHL refuses, the contract refuses, in GHL's words."""

from __future__ import annotations

from sandboxes.ghl.contract import contract

V = {"Version": "2021-07-28"}


def test_the_old_opportunity_upsert_body_is_refused_as_ghl_refuses_it() -> None:
    spec = contract()
    op = spec.operation("POST", "/opportunities/upsert")
    assert op is not None
    body = {"pipelineId": "p", "locationId": "l", "name": "n", "status": "open", "contactId": "c"}
    problem = spec.check_request(op, V, {}, body)
    assert problem is not None and problem.status == 422
    assert "property contactId should not exist" in problem.messages
    assert "followers should not be empty" in problem.messages
    assert problem.body()["error"] == "Unprocessable Entity"


def test_create_takes_contact_id_and_search_needs_the_location() -> None:
    spec = contract()
    create = spec.operation("POST", "/opportunities/")
    assert create is not None and create.scopes == ("opportunities.write",)
    body = {"pipelineId": "p", "locationId": "l", "name": "n", "status": "open", "contactId": "c"}
    assert spec.check_request(create, V, {}, body) is None
    assert spec.check_request(create, V, {}, {**body, "monetaryValue": "a lot"}) is not None
    search = spec.operation("GET", "/opportunities/search")
    assert search is not None and search.operation_id == "search-opportunity"
    problem = spec.check_request(search, V, {"contact_id": "c"}, None)
    assert problem is not None and problem.messages == ("location_id should not be empty",)


def test_headers_unknown_properties_and_unknown_calls() -> None:
    spec = contract()
    upsert = spec.operation("POST", "/contacts/upsert")
    assert upsert is not None
    missing_version = spec.check_request(upsert, {}, {}, {"locationId": "l"})
    assert missing_version is not None and missing_version.status == 400
    wrong_version = spec.check_request(upsert, {"version": "2021-04-15"}, {}, {"locationId": "l"})
    assert wrong_version is not None and wrong_version.status == 400
    raw_boolean = spec.check_request(
        upsert, V, {}, {"locationId": "l", "customFields": [{"id": "x", "field_value": True}]}
    )
    assert raw_boolean is not None and raw_boolean.status == 422
    update = spec.operation("PUT", "/contacts/abc123")
    assert update is not None and update.operation_id == "update-contact"
    refused = spec.check_request(update, V, {}, {"locationId": "l", "email": "a@b.c"})
    assert refused is not None and refused.messages == ("property locationId should not exist",)
    # Literal paths win over parameters; a call no spec describes has no operation.
    duplicate = spec.operation("GET", "/contacts/search/duplicate")
    assert duplicate is not None and duplicate.operation_id == "get-duplicate-contact"
    assert spec.operation("POST", "/contacts/abc/magic") is None


def test_token_refresh_is_a_form_and_answers_are_checked_against_the_response_schema() -> None:
    spec = contract()
    token = spec.operation("POST", "/oauth/token")
    assert token is not None
    form = {"client_id": "a", "client_secret": "b", "grant_type": "refresh_token", "refresh_token": "r"}
    assert spec.check_request(token, {}, {}, form, "application/x-www-form-urlencoded") is None
    assert (
        spec.check_request(token, {}, {}, {"client_id": "a"}, "application/x-www-form-urlencoded") is not None
    )
    answer = {"access_token": "x", "expires_in": 86399, "refresh_token": "r2", "userId": "u"}
    assert spec.check_response(token, 200, answer) == []
    assert spec.check_response(token, 200, {"access_token": 5}) != []
    upsert = spec.operation("POST", "/contacts/upsert")
    assert upsert is not None
    assert spec.check_response(upsert, 200, {"new": True, "contact": {"id": "x", "name": None}}) != []
    assert spec.check_response(upsert, 429, {"anything": 1}) == []  # not described: not checked


def test_error_answers_are_checked_against_the_shared_error_bodies() -> None:
    spec = contract()
    search = spec.operation("GET", "/opportunities/search")
    assert search is not None
    unauthorized = {
        "statusCode": 401,
        "message": "The token is not authorized for this scope.",
        "error": "Unauthorized",
    }
    assert spec.check_response(search, 401, unauthorized) == []
    assert spec.check_response(search, 401, {"statusCode": "401"}) != []
