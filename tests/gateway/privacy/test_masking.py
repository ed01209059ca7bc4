from __future__ import annotations

import io
import logging

import pytest

from gateway.privacy import (
    PersonalDataFilter,
    install_log_masking,
    mask_address,
    mask_id_number,
    mask_name,
    mask_phone,
    mask_text,
)

ID_NUMBER = "43030219800101123X"


@pytest.mark.parametrize(
    ("name", "masked"),
    [("张三", "张*"), ("欧阳娜娜", "欧**娜"), ("李小明", "李*明"), ("王", "*"), ("", ""), (" 张三 ", "张*")],
)
def test_mask_name(name: str, masked: str) -> None:
    assert mask_name(name) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        (ID_NUMBER, "430302********123X"),
        ("43030219800101123x", "430302********123X"),
        ("430302800101123", "430302*****1123"),
        ("12345", "*****"),
    ],
)
def test_mask_id_number(value: str, masked: str) -> None:
    assert mask_id_number(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("13812345678", "138****5678"),
        ("0731-58581234", "073*-****1234"),
        ("110", "***"),
        ("123456", "****56"),
    ],
)
def test_mask_phone(value: str, masked: str) -> None:
    assert mask_phone(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("湖南省湘潭市雨湖区窑湾街道白石古莲城3栋2单元401", "湖南省湘潭市雨湖区窑湾街道****"),
        ("雨湖区宝庆路社区天隆小区5栋", "雨湖区宝庆路社区****"),
        ("天隆小区5栋", "天隆****"),
        ("湘潭市雨湖区", "湘潭市雨湖区"),
    ],
)
def test_mask_address(value: str, masked: str) -> None:
    assert mask_address(value) == masked


def test_mask_text_finds_ids_and_mobiles_in_free_text() -> None:
    text = f"申请人{ID_NUMBER}电话13812345678, alt +86 139-8765-4321; id {ID_NUMBER.lower()}"
    masked = mask_text(text)
    assert "430302********123X" in masked and ID_NUMBER not in masked and ID_NUMBER.lower() not in masked
    assert "138****5678" in masked and "13812345678" not in masked
    assert "+86 139****4321" in masked
    # Longer digit runs (order numbers, timestamps) are not mangled.
    assert mask_text("order 1234567890123456789012") == "order 1234567890123456789012"
    assert mask_text("no digits here") == "no digits here"


@pytest.fixture
def masked_logging() -> None:
    install_log_masking()
    install_log_masking()  # idempotent


@pytest.mark.usefixtures("masked_logging")
def test_log_line_with_an_id_number_shows_it_masked(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("onewindow.test.intake")
    with caplog.at_level(logging.INFO):
        log.info("application filed for %s, phone %s", ID_NUMBER, "13812345678")
        log.warning(f"inline {ID_NUMBER}")
    assert "430302********123X" in caplog.text and "138****5678" in caplog.text
    assert ID_NUMBER not in caplog.text and "13812345678" not in caplog.text
    for record in caplog.records:
        assert ID_NUMBER not in record.getMessage()


@pytest.mark.usefixtures("masked_logging")
def test_masking_reaches_handlers_of_child_loggers_and_exceptions() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("onewindow.test.isolated")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        try:
            raise ValueError(f"bad applicant {ID_NUMBER}")
        except ValueError:
            log.exception("failed for %(id)s", {"id": ID_NUMBER})
    finally:
        log.removeHandler(handler)
        log.propagate = True
    output = stream.getvalue()
    assert ID_NUMBER not in output
    assert output.count("430302********123X") == 2  # the message and the traceback


def test_filter_masks_records_made_elsewhere() -> None:
    record = logging.makeLogRecord({"msg": "citizen %s", "args": (ID_NUMBER,), "levelno": logging.INFO})
    assert PersonalDataFilter().filter(record) is True
    assert record.getMessage() == "citizen 430302********123X"


@pytest.mark.usefixtures("masked_logging")
def test_root_logger_and_its_handlers_carry_the_filter() -> None:
    root = logging.getLogger()
    assert any(isinstance(f, PersonalDataFilter) for f in root.filters)
    for handler in root.handlers:
        assert any(isinstance(f, PersonalDataFilter) for f in handler.filters)
