"""Masking of personal data for display and for logs.

``mask_name("张三") == "张*"``, ``mask_name("欧阳娜娜") == "欧**娜"``,
``mask_id_number("43030219800101123X") == "430302********123X"``, ``mask_phone("13812345678") == "138****5678"``,
``mask_address("湖南省湘潭市雨湖区窑湾街道白石古莲城3栋") == "湖南省湘潭市雨湖区窑湾街道****"``.

`install_log_masking()` makes every log record pass through `mask_text`: it wraps the log-record factory
(so records from every logger are masked, whatever handlers a framework installs later — filters on the root
logger alone do not see records propagated from child loggers) and puts a `PersonalDataFilter` on the root
logger and its handlers (records built elsewhere, e.g. ``logging.makeLogRecord``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

_MASK = "*"


def mask_name(name: str) -> str:
    """Keep the first character (and the last of three or more): 张* / 李*明 / 欧**娜."""
    n = name.strip()
    if len(n) <= 1:
        return _MASK * len(n)
    if len(n) == 2:
        return n[0] + _MASK
    return n[0] + _MASK * (len(n) - 2) + n[-1]


def mask_id_number(value: str) -> str:
    """Keep the division code and the last four: 430302********123X (15-digit numbers: 6 + 5 masked + 4)."""
    v = value.strip().upper()
    if len(v) >= 15:
        return v[:6] + _MASK * (len(v) - 10) + v[-4:]
    if len(v) >= 8:
        return v[:2] + _MASK * (len(v) - 4) + v[-2:]
    return _MASK * len(v)


def mask_phone(value: str) -> str:
    """138****5678 for mobiles; other numbers keep their first three and last four digits (fewer if short)."""
    digit_positions = [i for i, ch in enumerate(value) if ch.isdigit()]
    count = len(digit_positions)
    if count >= 9:
        head, tail = 3, 4
    elif count >= 5:
        head, tail = 0, 2
    else:
        head, tail = 0, 0
    hidden = set(digit_positions[head : count - tail])
    return "".join(_MASK if i in hidden else ch for i, ch in enumerate(value))


# Administrative units, largest first, as they open a Chinese address; 小区 (a housing estate) is not one.
_UNIT_RE = re.compile(r".{1,12}?(?:特别行政区|自治区|自治州|自治县|地区|街道|社区|省|市|州|盟|区|县|旗|镇|乡|村)")


def mask_address(value: str) -> str:
    """Keep the administrative units (province … street/community), hide the rest: 雨湖区窑湾街道****."""
    text = value.strip()
    position = 0
    while True:
        match = _UNIT_RE.match(text, position)
        if match is None or match.group().endswith("小区"):
            break
        position = match.end()
    if position == 0:
        keep = min(3, len(text) // 3)
        return text[:keep] + (_MASK * 4 if len(text) > keep else "")
    return text[:position] + (_MASK * 4 if position < len(text) else "")


# --- free text (log lines) -----------------------------------------------------------------------------

_ID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])([0-9]{6})[0-9]{8}([0-9]{3}[0-9Xx])(?![0-9A-Za-z])")
_MOBILE_IN_TEXT = re.compile(r"(?<![0-9])((?:\+?86[- ]?)?1[3-9][0-9])[- ]?[0-9]{4}[- ]?([0-9]{4})(?![0-9])")


def mask_text(text: str) -> str:
    """Mask anything that looks like an 18-character citizen ID number or an 11-digit mobile number."""
    if not any(ch.isdigit() for ch in text):
        return text
    text = _ID_IN_TEXT.sub(lambda m: m.group(1) + _MASK * 8 + m.group(2).upper(), text)
    return _MOBILE_IN_TEXT.sub(lambda m: m.group(1) + _MASK * 4 + m.group(2), text)


_MASKED_ATTR = "_onewindow_masked"


def mask_record(record: logging.LogRecord) -> None:
    """Rewrite a record so that its message, exception text and stack show no ID or mobile number."""
    seen = getattr(record, _MASKED_ATTR, None)
    if seen is not None and seen[0] is record.msg and seen[1] is record.args:
        return  # already masked (by the record factory, then by a filter)
    try:
        message = record.getMessage()
    except Exception:  # a malformed format string: logging reports it later, with nothing formatted
        return
    masked = mask_text(message)
    if masked != message:
        record.msg = masked
        record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = mask_text(record.exc_text)
    if record.stack_info:
        record.stack_info = mask_text(record.stack_info)
    setattr(record, _MASKED_ATTR, (record.msg, record.args))


class PersonalDataFilter(logging.Filter):
    """Masks citizen ID and mobile numbers in every record it sees (message, args, exception text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


_FACTORY_FLAG = "_onewindow_masking"


def install_log_masking() -> None:
    """Mask personal data in every log record of this process; calling it again changes nothing."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, _FACTORY_FLAG, False):

        def masking_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = factory(*args, **kwargs)
            mask_record(record)
            return record

        setattr(masking_factory, _FACTORY_FLAG, True)
        logging.setLogRecordFactory(masking_factory)
    root = logging.getLogger()
    for target in (root, *root.handlers):
        if not any(isinstance(f, PersonalDataFilter) for f in target.filters):
            target.addFilter(PersonalDataFilter())


MASKERS: dict[str, Callable[[str], str]] = {
    "name": mask_name,
    "id_number": mask_id_number,
    "phone": mask_phone,
    "address": mask_address,
}

__all__ = [
    "MASKERS",
    "PersonalDataFilter",
    "install_log_masking",
    "mask_address",
    "mask_id_number",
    "mask_name",
    "mask_phone",
    "mask_record",
    "mask_text",
]
