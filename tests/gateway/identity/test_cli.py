"""End to end through the installed command: `onewindow tokens …` then `onewindow audit verify|checkpoint`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

import pytest
from sqlalchemy import text, update

from gateway.audit.tables import audit_records
from gateway.identity import principal_for_token
from gateway.settings import Settings
from gateway.storage import Database

pytestmark = pytest.mark.slow  # every test here runs the command line in other processes

ONEWINDOW = Path(sys.executable).parent / "onewindow"
ROOT = Path(__file__).resolve().parents[3]


async def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ONEWINDOW_")}
    environ.update(env or {})
    proc = await asyncio.create_subprocess_exec(
        str(ONEWINDOW),
        *args,
        cwd=ROOT,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_embedded_defaults_tokens_then_verify(tmp_path: Path) -> None:
    data = str(tmp_path / "var")
    code, out, err = await _run("tokens", "create", "--role", "clerk", "--unit", "430302001000", "--data-dir", data)
    assert code == 0, err
    token = out.strip().splitlines()[-1]
    assert re.fullmatch(r"ow_[A-Za-z0-9_-]{43}", token) and "shown once" in err
    assert (tmp_path / "var" / "onewindow.sqlite3").exists()

    code, out, err = await _run("tokens", "create", "--role", "officer", "--data-dir", data)
    assert code == 2 and out == "" and "--department" in err

    code, out, _ = await _run("tokens", "list", "--json", "--data-dir", data)
    listed = json.loads(out)
    assert code == 0 and [t["role"] for t in listed] == ["clerk"] and token not in out

    code, out, err = await _run("audit", "verify", "--data-dir", data)
    assert code == 0, err
    assert out.strip() == "1 records, chain intact, no checkpoint yet"

    code, out, _ = await _run("audit", "checkpoint", "--data-dir", data)
    assert code == 0 and out.startswith("Checkpoint at record #1")
    key = tmp_path / "var" / "keys" / "audit_ed25519.pem"
    assert key.stat().st_mode & 0o777 == 0o600

    code, out, _ = await _run("tokens", "revoke", listed[0]["id"], "--data-dir", data)
    assert code == 0 and "revoked" in out

    code, pem, _ = await _run("audit", "public-key", "--data-dir", data)
    assert code == 0 and pem.startswith("-----BEGIN PUBLIC KEY-----")
    (tmp_path / "audit.pub").write_text(pem)
    code, out, _ = await _run("audit", "verify", "--data-dir", data, "--public-key", str(tmp_path / "audit.pub"))
    assert code == 0 and out.startswith("2 records, chain intact, last checkpoint at #1 (")


async def test_tokens_and_verify_on_either_database(db_settings: Settings, database: Database, tmp_path: Path) -> None:
    env = {"ONEWINDOW_DATABASE_URL": db_settings.database_url, "ONEWINDOW_DATABASE_SCHEMA": db_settings.database_schema}
    data = str(tmp_path / "cli")
    code, out, err = await _run(
        "tokens",
        "create",
        "--role",
        "system",
        "--scope",
        "status:read",
        "--label",
        "部门推送",
        "--data-dir",
        data,
        env=env,
    )
    assert code == 0, err
    principal = await principal_for_token(database, out.strip().splitlines()[-1])
    assert principal is not None and principal.scopes == ("status:read",) and principal.label == "部门推送"
    code, out, err = await _run("audit", "verify", "--data-dir", data, env=env)
    assert (code, out.strip()) == (0, "1 records, chain intact, no checkpoint yet"), err

    # Someone with database access edits record #1 after removing the append-only trigger.
    async with database.transaction() as conn:
        if database.dialect == "postgresql":
            await conn.execute(text("DROP TRIGGER audit_records_append_only ON audit_records"))
        else:
            await conn.execute(text("DROP TRIGGER audit_records_no_update"))
        await conn.execute(update(audit_records).where(audit_records.c.seq == 1).values(actor="cli:somebody-else"))
    code, out, err = await _run("audit", "verify", "--data-dir", data, env=env)
    assert code == 1
    assert "chain BROKEN at record #1 (id " in out and "edited" in out
