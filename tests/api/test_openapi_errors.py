"""The OpenAPI document's error responses are what the server sends: the one error object (never spectree's
validation array), and every status each route can answer (API.md "Conventions")."""

from __future__ import annotations

import pytest

from app.domain.users import Role
from tests.conftest import login

ERROR_REF = "#/components/schemas/ErrorBody"


@pytest.fixture
def document(client, make_user) -> dict:
    token = login(client, make_user("doc-reader", Role.MODERATOR))["access_token"]
    response = client.get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    return response.get_json()


def operations(document: dict):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", method, operation


def test_every_error_response_is_the_error_object(document):
    assert "ValidationError" not in str(document["paths"])
    schema = document["components"]["schemas"]["ErrorBody"]
    assert set(schema["required"]) == {"success", "error"}
    for label, _method, operation in operations(document):
        for code, response in operation["responses"].items():
            if int(code) >= 400:
                assert response["content"]["application/json"]["schema"]["$ref"] == ERROR_REF, (label, code)


def test_each_route_documents_the_statuses_it_can_answer(document):
    for label, method, operation in operations(document):
        codes = {int(code) for code in operation["responses"]}
        assert {414, 431} <= codes, label
        public = operation.get("security") == []
        assert (401 in codes) is (not public or label == "POST /api/v1/auth/login"), label
        assert (503 in codes) is (label != "GET /healthz"), label
        if method in ("post", "put", "patch", "delete"):
            assert {400, 413, 415} <= codes, label
        if "{" in label:
            assert {400, 404} <= codes, label
    paths = document["paths"]
    assert 429 in {int(code) for code in paths["/api/v1/auth/login"]["post"]["responses"]}
    assert 403 in {int(code) for code in paths["/api/v1/admin/jobs/queue/{queueName}/pause"]["patch"]["responses"]}
    assert 403 not in {int(code) for code in paths["/api/v1/admin/jobs/metrics"]["get"]["responses"]}
    assert 400 not in {int(code) for code in paths["/healthz"]["get"]["responses"]}
