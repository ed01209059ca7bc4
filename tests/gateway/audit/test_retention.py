"""Retention: logs and audit records are kept at least six months (the Cybersecurity Law, Art. 21). The settings
refuse less, and no code of the gateway deletes audit records (the triggers refusing it are tested in
test_log.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.settings import MIN_RETENTION_DAYS, SettingsError, load_settings

GATEWAY = Path(__file__).resolve().parents[3] / "gateway"
#: A statement that removes audit rows: SQLAlchemy's delete() on an audit table, or SQL text doing it.
_REMOVES_AUDIT = re.compile(
    r"delete\(\s*audit_(records|checkpoints)\b|DELETE\s+FROM\s+\"?audit_|TRUNCATE\s+(TABLE\s+)?\"?audit_",
    re.IGNORECASE,
)


def test_retention_defaults_to_six_months_and_refuses_less() -> None:
    settings = load_settings(environ={})
    assert MIN_RETENTION_DAYS >= 180
    assert settings.audit_retention_days >= MIN_RETENTION_DAYS and settings.log_retention_days >= MIN_RETENTION_DAYS
    longer = load_settings(environ={"ONEWINDOW_AUDIT_RETENTION_DAYS": "400", "ONEWINDOW_LOG_RETENTION_DAYS": "365"})
    assert (longer.audit_retention_days, longer.log_retention_days) == (400, 365)
    for name in ("ONEWINDOW_AUDIT_RETENTION_DAYS", "ONEWINDOW_LOG_RETENTION_DAYS"):
        with pytest.raises(SettingsError, match=name[len("ONEWINDOW_") :].lower()):
            load_settings(environ={name: str(MIN_RETENTION_DAYS - 1)})


def test_no_job_of_the_gateway_deletes_audit_records() -> None:
    offenders = []
    for path in sorted(GATEWAY.rglob("*.py")):
        if "migrations" in path.parts:
            continue  # the migrations create the triggers (and drop them on downgrade)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if _REMOVES_AUDIT.search(line):
                offenders.append(f"{path.relative_to(GATEWAY.parent)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_check_finds_a_deletion() -> None:
    assert _REMOVES_AUDIT.search("await conn.execute(delete(audit_records).where(audit_records.c.seq < 9))")
    assert _REMOVES_AUDIT.search('text("DELETE FROM audit_checkpoints WHERE seq > 3")')
    assert not _REMOVES_AUDIT.search("await conn.execute(delete(applications).where(...))")
