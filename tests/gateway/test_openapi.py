"""The OpenAPI document states what the gateway enforces (gateway/openapi.py and the annotations at the source):
the gaps schemathesis found, one by one. tests/conformance/test_openapi.py runs the fuzzer itself."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.cases.machine import STATUSES
from gateway.settings import load_settings
from gateway.storage.metadata import MAX_API_INTEGER

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    app = create_app(load_settings(environ={}, data_dir=tmp_path_factory.mktemp("var")))
    schema: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(app.openapi_schema.to_schema()))
    return schema


def operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {op["operationId"]: op for methods in document["paths"].values() for op in methods.values()}


def component(document: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


def parameter(operation: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [p for p in operation["parameters"] if p["name"] == name]
    assert len(found) == 1, name
    return found[0]


def test_every_error_answer_is_documented_as_problem_json(document: dict[str, Any]) -> None:
    for operation_id, operation in operations(document).items():
        for status, response in operation["responses"].items():
            if int(status) >= 400 and operation_id != "healthReady":  # its 503 is the readiness report
                assert list(response["content"]) == [PROBLEM], (operation_id, status)
                assert response["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
    problem = component(document, "Problem")
    assert set(problem["properties"]) == {"type", "title", "status", "detail", "instance", "errors"}
    assert problem.get("additionalProperties", True) is True  # `allowed`, `current_status`… may follow
    assert "examples" not in problem["properties"]["status"]  # no invented examples (and a stable document)


def test_401_on_every_operation_that_needs_a_token_and_403_where_roles_are_checked(document: dict[str, Any]) -> None:
    for operation_id, operation in operations(document).items():
        public = operation.get("security") == [{}]
        assert ("401" in operation["responses"]) is not public, operation_id
    ops = operations(document)
    for operation_id in ("supervisionSummary", "listRectifications", "closeRectification", "createApplication"):
        assert "403" in ops[operation_id]["responses"], operation_id
    assert {"trackApplication", "evaluateService", "listCatalogItems", "healthLive"} <= {
        op_id for op_id, op in ops.items() if op.get("security") == [{}]
    }


def test_every_post_documents_what_its_idempotency_key_adds(document: dict[str, Any]) -> None:
    for path, methods in document["paths"].items():
        if "post" in methods:
            assert {"409", "422", "503"} <= set(methods["post"]["responses"]), path
            (key,) = [p for p in methods["post"]["parameters"] if p["name"] == "Idempotency-Key"]
            assert key["schema"]["pattern"] == r"^[\x21-\x7e]+$" and key["schema"]["maxLength"] == 255


def test_400_everywhere_parameters_or_bodies_are_taken_and_415_422_for_json_bodies(document: dict[str, Any]) -> None:
    for operation_id, operation in operations(document).items():
        if operation.get("parameters") or "requestBody" in operation:
            assert "400" in operation["responses"], operation_id
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            assert {"415", "422"} <= set(operation["responses"]), operation_id
        if "multipart/form-data" in content:
            assert "415" in operation["responses"], operation_id


def test_purpose_and_query_code_are_required_strings_with_their_shape(document: dict[str, Any]) -> None:
    ops = operations(document)
    for operation_id in ("readApplicant", "readMaterialCertificate"):
        purpose = parameter(ops[operation_id], "purpose")
        assert purpose["required"] is True
        schema = purpose["schema"]
        assert (schema["type"], schema["minLength"], schema["maxLength"]) == ("string", 2, 200)
        assert "oneOf" not in schema
        pattern = re.compile(schema["pattern"])
        assert pattern.search("审核低保申请") and pattern.search("a b")
        assert not pattern.search("审") and not pattern.search(" 审 ") and not pattern.search("审核\x01")
    for operation_id in ("trackApplication", "evaluateService"):
        code = parameter(ops[operation_id], "code")
        assert code["required"] is True and re.fullmatch(code["schema"]["pattern"], "ABCD2345")
        assert not re.fullmatch(code["schema"]["pattern"], "ABCD0123")  # no 0, 1 (nor O, I, L)
        number = parameter(ops[operation_id], "tracking_number")
        assert re.fullmatch(number["schema"]["pattern"], "430302202601050000014")
        assert not re.fullmatch(number["schema"]["pattern"], "4303022026010500000")


def test_enumerations_are_stated(document: dict[str, Any]) -> None:
    ops = operations(document)
    queue = ops["listApplications"]
    # `null` (or no `due` at all) is no filter: the string "null" reads as absent, as for every optional parameter.
    assert parameter(queue, "due")["schema"]["enum"] == ["soon", "overdue", None]
    status_filter = re.compile(parameter(queue, "status")["schema"]["pattern"])
    assert status_filter.fullmatch("in_review") and status_filter.fullmatch("accepted,in_review")
    assert not status_filter.fullmatch("done") and not status_filter.fullmatch("accepted,")
    assert parameter(ops["listRectifications"], "status")["schema"]["enum"] == ["open", "closed", "all"]
    assert component(document, "TransitionIn")["properties"]["to"]["enum"] == list(STATUSES)
    assert component(document, "ApplicationView")["properties"]["status"]["enum"] == list(STATUSES)
    level = component(document, "EvaluationIn")["properties"]["level"]
    assert (level["minimum"], level["maximum"]) == (1, 5)
    for name in ("after", "offset"):
        operation = ops["listStatusEvents" if name == "after" else "listApplications"]
        assert parameter(operation, name)["schema"]["maximum"] == 2**53 - 1


def test_every_integer_parameter_is_bounded_by_what_json_and_the_databases_hold(document: dict[str, Any]) -> None:
    seen = []
    for operation_id, operation in operations(document).items():
        for p in operation.get("parameters", []):
            schemas = [p["schema"], *p["schema"].get("oneOf", [])]
            if any(s.get("type") == "integer" for s in schemas):
                seen.append((operation_id, p["name"]))
                assert 0 < p["schema"]["maximum"] <= MAX_API_INTEGER, (operation_id, p["name"])
    assert {("listStatusEvents", "after"), ("listApplications", "offset"), ("listApplications", "limit")} <= set(seen)


@pytest.mark.parametrize(
    ("name", "required"),
    [
        ("CreateApplication", ["applicant", "consent", "item_code"]),
        ("ApplicantIn", ["id_number", "name", "phone"]),
        ("TransitionIn", ["to"]),
        ("EvaluationIn", ["level"]),
        ("Dimensions", []),
        ("CloseRectification", ["outcome"]),
    ],
)
def test_request_bodies_are_closed_and_say_what_is_required(
    document: dict[str, Any], name: str, required: list[str]
) -> None:
    schema = component(document, name)
    assert schema["additionalProperties"] is False
    assert schema["required"] == required


def test_options_lists_every_method_of_a_path_two_domains_share(tmp_path: Path) -> None:
    app = create_app(load_settings(environ={}, data_dir=tmp_path / "var"))
    with TestClient(app) as client:
        response = client.options("/api/v1/applications")
    assert response.status_code == 204
    assert response.headers["allow"] == "GET, OPTIONS, POST"
