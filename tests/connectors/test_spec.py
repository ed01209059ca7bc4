"""Department files: the shipped ones load; bad ones are refused with ``file: field: message``."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from connectors.registry import load_department_dir, load_departments, rebase, type_problems
from connectors.spec import (
    ApiKeyAuth,
    CursorPaging,
    HmacAuth,
    MutualTlsAuth,
    NoAuth,
    OAuth2ClientCredentials,
    OffsetPaging,
    PageNumberPaging,
    SpecError,
    XmlFormat,
    decode_department,
    load_department_file,
)
from tests.connectors.helpers import CONFIG_DIR

SHIPPED = CONFIG_DIR / "departments" / "public_security.toml"


def test_shipped_departments_load_with_their_styles() -> None:
    specs = {s.code: s for s in load_departments(CONFIG_DIR)}
    assert set(specs) == {
        "public_security",
        "civil_affairs",
        "human_resources",
        "disabled_persons",
        "health",
        "veterans",
        "natural_resources",
    }
    assert isinstance(specs["public_security"].auth, ApiKeyAuth)
    assert isinstance(specs["public_security"].paging, CursorPaging)
    assert isinstance(specs["civil_affairs"].auth, HmacAuth)
    assert isinstance(specs["civil_affairs"].paging, OffsetPaging)
    assert isinstance(specs["human_resources"].auth, OAuth2ClientCredentials)
    assert isinstance(specs["human_resources"].paging, PageNumberPaging)
    assert isinstance(specs["disabled_persons"].format, XmlFormat)
    assert isinstance(specs["health"].auth, MutualTlsAuth)
    assert isinstance(specs["veterans"].auth, NoAuth)
    # docs/simulators.md: department i listens on 8100 + i, in this order.
    order = ["public_security", "civil_affairs", "human_resources", "disabled_persons", "health", "veterans"]
    for i, code in enumerate(order, start=1):
        assert specs[code].base_url.endswith(f":{8100 + i}")
    for spec in specs.values():
        assert spec.paging is not None and spec.paging.page_size == 500


def test_department_types_agree_with_the_catalog() -> None:
    loader = pytest.importorskip("catalog.loader")
    try:
        catalog = loader.load_catalog(CONFIG_DIR)
    except Exception as exc:  # the catalog data may still be in progress
        pytest.skip(f"catalog does not load yet: {exc}")
    known = {t.key: (t.type_code, t.issuing_department) for t in catalog.certificate_types}
    assert type_problems(load_departments(CONFIG_DIR), known) == []


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ('kind = "api_key"', 'kind = "kerberos"', "auth.kind", "Invalid value 'kerberos'"),
        ('header = "X-Api-Key"', 'headr = "X-Api-Key"', "auth", "unknown field `headr`"),
        ("page_size = 500", "page_size = 0", "paging.page_size", ">= 1"),
        ('identifier = "licenseId"', "identifier = 12", "mapping.identifier", "Expected `str`, got `int`"),
        ('path = "/api/v2/licenses"\nupdated', "updated", "endpoints.bulk", "missing required field `path`"),
        ("[retry]\nattempts = 4", "[retry]\nattempts = 40", "retry.attempts", "<= 20"),
        ('base_url = "http://127.0.0.1:8101"', 'base_url = "ftp://x"', "base_url", "http:// or https://"),
        ('holder_param = "holderIdNo"\n', "", "endpoints.holder", "{holder_id}"),
        ("[mapping]\n", '[mapping]\ntransforms = {colour = ["strip"]}\n', "mapping.transforms.colour", "not a mapped"),
        ("[mapping]\n", '[mapping]\nutc_offset = "+8"\n', "mapping.utc_offset", "must look like +08:00"),
    ],
)
def test_invalid_file_names_file_and_field(tmp_path: Path, old: str, new: str, field: str, message: str) -> None:
    path = tmp_path / "public_security.toml"
    path.write_text(_edit(SHIPPED.read_text(encoding="utf-8"), old, new), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_department_file(path)
    line = info.value.problems[0]
    assert line.startswith(f"{path}: {field}: "), line
    assert message in line, line


def test_every_invalid_file_is_reported(tmp_path: Path) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    (tmp_path / "public_security.toml").write_text(_edit(text, "page_size = 500", "page_size = -1"), encoding="utf-8")
    (tmp_path / "other.toml").write_text(_edit(text, 'code = "public_security"', 'code = "other"')[:-10] + "\n[[[")
    (tmp_path / "third.toml").write_text(text, encoding="utf-8")  # code differs from the file name
    with pytest.raises(SpecError) as info:
        load_department_dir(tmp_path)
    problems = info.value.problems
    assert len(problems) == 3
    assert any(p.startswith(f"{tmp_path / 'public_security.toml'}: paging.page_size:") for p in problems)
    assert any(p.startswith(f"{tmp_path / 'other.toml'}: (file): not valid TOML") for p in problems)
    assert any(p.startswith(f"{tmp_path / 'third.toml'}: code: must equal the file name") for p in problems)
    assert str(info.value).count("\n") == 2


def test_custom_connector_needs_only_a_class() -> None:
    spec = decode_department(
        """
        code = "market_regulation"
        name = "湘潭市雨湖区市场监督管理局"
        base_url = "https://example.invalid"
        [types]
        business_license = "1110000020569441YY001"
        [custom]
        class = "tests.connectors.test_client:StaticClient"
        options = {records = 3}
        """
    )
    assert spec.custom is not None and spec.custom.class_ == "tests.connectors.test_client:StaticClient"
    assert spec.custom.options == {"records": 3}
    with pytest.raises(SpecError, match="endpoints: required unless"):
        decode_department(
            """
            code = "x"
            name = "x"
            base_url = "http://x"
            types = {a = "b"}
            """
        )


def test_secrets_come_from_the_environment_when_set() -> None:
    spec = decode_department(SHIPPED.read_bytes())
    assert isinstance(spec.auth, ApiKeyAuth)
    assert spec.auth.resolved_key({}) == "demo-public-security-key"
    assert spec.auth.resolved_key({"ONEWINDOW_PUBLIC_SECURITY_API_KEY": "real"}) == "real"


def test_rebase_points_specs_at_other_urls() -> None:
    specs = load_departments(CONFIG_DIR)
    moved = {s.code: s for s in rebase(specs, {"veterans": "http://127.0.0.1:5555/"})}
    assert moved["veterans"].base_url == "http://127.0.0.1:5555"
    assert moved["public_security"].base_url == "http://127.0.0.1:8101"
    assert msgspec.structs.replace(moved["veterans"], base_url="x") != moved["veterans"]
