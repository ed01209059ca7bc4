"""Strict JSON bodies (gateway/bodies.py) on their own: which problem each kind of bad body is, and that no
message repeats the value that was sent."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
import pytest

from gateway.bodies import decode_json_body
from gateway.problems import BadRequest, ProblemError, Unprocessable, UnsupportedMediaType


class Inner(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    colour: Literal["red", "green"] | None = None


class Body(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    to: Literal["draft", "accepted"]
    level: Annotated[int, msgspec.Meta(ge=1, le=5)] | None = None
    flag: bool = False
    inner: Inner | None = None


def refused(body: bytes, content_type: str = "application/json") -> ProblemError:
    with pytest.raises(ProblemError) as caught:
        decode_json_body(body, content_type, Body)
    return caught.value


def test_a_well_typed_body_decodes() -> None:
    assert decode_json_body(b'{"to": "draft", "level": 5, "inner": {"colour": "red"}}', "application/json", Body) == (
        Body(to="draft", level=5, inner=Inner(colour="red"))
    )
    assert decode_json_body(b'{"to": "draft"}', "application/problem+json", Body) == Body(to="draft")


@pytest.mark.parametrize("content_type", ["", "text/plain", "application/jsonx", "multipart/form-data", "json"])
def test_other_media_types_are_415(content_type: str) -> None:
    problem = refused(b'{"to": "draft"}', content_type)
    assert isinstance(problem, UnsupportedMediaType) and problem.errors is not None
    assert problem.errors[0].field == "Content-Type"


@pytest.mark.parametrize(
    "body", [b'{"to": "dr\xffaft"}', b"[" * 5000 + b"]" * 5000, b'{"to": ', b"", b'{"to": "draft"} trailing']
)
def test_what_is_not_json_is_400(body: bytes) -> None:
    problem = refused(body)
    assert isinstance(problem, BadRequest) and problem.errors is not None and problem.errors[0].field == "body"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (b'{"to": "secret-value"}', "to", "must be one of: accepted, draft"),
        (b'{"to": "draft", "inner": {"colour": "secret-value"}}', "inner.colour", "must be one of: green, red"),
        (b'{"to": "draft", "level": "5"}', "level", "Expected `int | null`, got `str`"),
        (b'{"to": "draft", "level": 5.0}', "level", "Expected `int | null`, got `float`"),
        (b'{"to": "draft", "level": 6}', "level", "Expected `int` <= 5"),
        (b'{"to": "draft", "flag": "true"}', "flag", "Expected `bool`, got `str`"),
        (b'{"level": 5}', "to", "is required"),
        (b'{"to": "draft", "secret-value": 1}', "secret-value", "is not a field of this request"),
        (b'{"to": "draft", "inner": {"shade": 1}}', "inner.shade", "is not a field of this request"),
        (b"[1]", "body", "Expected `object`, got `array`"),
    ],
)
def test_wrong_shapes_are_422_naming_the_field(body: bytes, field: str, message: str) -> None:
    problem = refused(body)
    assert isinstance(problem, Unprocessable) and problem.errors is not None
    assert (problem.errors[0].field, problem.errors[0].message) == (field, message)
    if field != "secret-value":
        assert "secret-value" not in problem.errors[0].message and "secret-value" not in problem.detail
