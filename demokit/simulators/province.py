"""A simulated provincial platform (办件汇聚): it takes case records, checks them against its own schema and
answers in its own envelope ``{"code", "message", "data"}`` (``"0000"`` = taken), and answers a count query by day
and status for the reconciliation.

Its schema (the platform's field names, docs/province.md) is written here independently of the gateway's mapping
file, so a wrong mapping is refused, not mirrored. It checks: the HMAC signature (the connectors' scheme, the key
in ``config/province/platform.toml``), every required field of the record's type with its format, no unknown
fields, masked applicant identities (never a full name or ID number), and the order of each case's steps (``xh``
only grows per ``sblsh``). A record id seen before is answered as taken again and not counted twice.

Test control: ``fail_next(n, status)`` makes the next ``n`` record posts fail with ``status``; ``drop(record_id)``
forgets a record (a planted difference for the reconciliation); ``POST /__sim__/faults`` and
``DELETE /__sim__/records/{id}`` do the same over HTTP from loopback.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from catalog.calendar import DISTRICT_TZ
from connectors.auth import encode_query, hmac_signature, hmac_string_to_sign
from connectors.registry import DEFAULT_CONFIG_DIR
from connectors.spec import HmacAuth
from gateway.province.target import ProvinceTarget, load_target

STATUSES = frozenset(
    {"accepted", "not_accepted", "in_review", "correction_required", "special_procedure"}
    | {"approved", "denied", "delivered", "withdrawn"}
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_REGION = re.compile(r"^\d{6}$")

Check = Callable[[Any], str | None]


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must be non-empty text"


def _any_text(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be text"


def _time(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a date-time"
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return "must be an ISO 8601 date-time"
    return None if parsed.tzinfo is not None else "must carry its UTC offset"


def _date(value: Any) -> str | None:
    return None if isinstance(value, str) and _DATE.match(value) else "must be a date YYYY-MM-DD"


def _one_of(*values: str) -> Check:
    return lambda value: None if value in values else f"must be one of {', '.join(values)}"


def _int(low: int, high: int | None = None) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
            return f"must be a whole number {low}..{high if high is not None else ''}"
        return None

    return check


def _masked(value: Any) -> str | None:
    return None if isinstance(value, str) and "*" in value else "must be masked (脱敏)"


COMMON: dict[str, Check] = {
    "sjwybs": _text,
    "jllx": _one_of("SL", "GC", "TBCX", "JG"),
    "xh": _int(1),
    "sblsh": _text,
    "sxbm": _text,
    "sxmc": _text,
    "xzqhdm": lambda v: None if isinstance(v, str) and _REGION.match(v) else "must be a 6-digit division code",
    "xtbs": _text,
    "blbmdm": _text,
    "blbmmc": _text,
    "bjzt": _one_of(*sorted(STATUSES)),
    "fssj": _time,
    "blr": _text,
}
#: Per record type: (required, optional).
BY_TYPE: dict[str, tuple[dict[str, Check], dict[str, Check]]] = {
    "SL": (
        {
            "slbz": _one_of("1", "0"),
            "slsj": _time,
            "sqrlx": _one_of("1", "2"),
            "sqrxm": _masked,
            "sqrzjlx": _one_of("111", "001"),
            "sqrzjhm": _masked,
            "sldwdm": _text,
        },
        {"cnsx": _int(0, 365), "cnbjrq": _date, "byslyy": _any_text},
    ),
    "GC": ({"hjmc": _text, "dzmc": _text, "hjkssj": _time, "hjjssj": _time, "clyj": _any_text}, {}),
    "TBCX": ({"tbcxzl": _text, "tbcxkssj": _time, "tbcxyy": _any_text}, {"tbcxjssj": _time}),
    "JG": (
        {"bjsj": _time, "bjjg": _one_of("准予", "不予", "撤回"), "bjjgms": _any_text},
        {"sdsj": _time, "sdfs": _text, "myd": _int(1, 5), "jgzzmc": _text, "jgzzbh": _text},
    ),
}
_ENCODER = msgspec.json.Encoder()


def validate(record: Any) -> list[str]:
    """``field: message`` for each problem of one record (empty: valid)."""
    if not isinstance(record, dict):
        return ["(body): must be a JSON object"]
    problems = [f"{name}: {msg}" for name, check in COMMON.items() if (msg := _check(record, name, check, True))]
    kind = record.get("jllx")
    if kind not in BY_TYPE:
        return problems
    required, optional = BY_TYPE[kind]
    problems += [f"{name}: {msg}" for name, check in required.items() if (msg := _check(record, name, check, True))]
    problems += [f"{name}: {msg}" for name, check in optional.items() if (msg := _check(record, name, check, False))]
    if kind == "SL":
        if record.get("slbz") == "1" and not ("cnsx" in record and "cnbjrq" in record):
            problems.append("cnsx/cnbjrq: an accepted case needs its promised time and date")
        if record.get("slbz") == "0" and "byslyy" not in record:
            problems.append("byslyy: a case not accepted needs the reason")
    known = set(COMMON) | set(required) | set(optional)
    problems += [f"{name}: not a field of a {kind} record" for name in sorted(set(record) - known)]
    return problems


def _check(record: Mapping[str, Any], name: str, check: Check, required: bool) -> str | None:
    if name not in record:
        return "is required" if required else None
    return check(record[name])


@dataclass
class StoredRecord:
    record: dict[str, Any]
    day: dt.date


@dataclass
class PlatformState:
    records: dict[str, StoredRecord] = field(default_factory=dict)
    last_sequence: dict[str, int] = field(default_factory=dict)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    fail_remaining: int = 0
    fail_status: int = 503


class ProvincePlatformSimulator:
    def __init__(self, *, config_dir: Path = DEFAULT_CONFIG_DIR, environ: Mapping[str, str] | None = None) -> None:
        target = load_target(config_dir)
        if target is None:
            raise ValueError(f"no provincial platform file under {config_dir}")
        self.target: ProvinceTarget = target
        self._hmac = target.auth if isinstance(target.auth, HmacAuth) else None
        self._secret = self._hmac.resolved_secret(environ) if self._hmac else ""
        self.state = PlatformState()

    # -- control ------------------------------------------------------------------------------------------------
    def fail_next(self, count: int, status: int = 503) -> None:
        self.state.fail_remaining = count
        self.state.fail_status = status

    def drop(self, record_id: str) -> None:
        self.state.records.pop(record_id, None)

    def counts(self, day: dt.date) -> dict[str, int]:
        out: dict[str, int] = {}
        for stored in self.state.records.values():
            if stored.day == day:
                status = str(stored.record["bjzt"])
                out[status] = out.get(status, 0) + 1
        return out

    # -- HTTP ---------------------------------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(self.target.records_path, self._take)
        app.router.add_get(self.target.counts_path, self._count)
        app.router.add_post("/__sim__/faults", self._set_faults)
        app.router.add_delete("/__sim__/records/{record_id}", self._drop)
        return app

    def _answer(self, code: str, message: str, data: Any = None, *, status: int = 200) -> web.Response:
        body = _ENCODER.encode({"code": code, "message": message, "data": data})
        return web.Response(body=body, status=status, content_type="application/json")

    def _authentic(self, request: web.Request, body: bytes) -> bool:
        spec = self._hmac
        if spec is None:
            return True
        headers = request.headers
        parts = [headers.get(h) for h in (spec.timestamp_header, spec.nonce_header, spec.signature_header)]
        timestamp, nonce, signature = parts
        if headers.get(spec.key_id_header) != spec.key_id or not (timestamp and nonce and signature):
            return False
        try:
            if abs(time.time() - int(timestamp) / 1000) > 300:
                return False
        except ValueError:
            return False
        query = encode_query(list(request.query.items()))
        expected = hmac_signature(
            self._secret, hmac_string_to_sign(request.method, request.path, query, timestamp, nonce, body)
        )
        return hmac.compare_digest(expected, signature)

    async def _take(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.state.attempts += 1
        if not self._authentic(request, body):
            return self._answer("E401", "签名校验失败", status=401)
        if self.state.fail_remaining > 0:
            self.state.fail_remaining -= 1
            return self._answer("E503", "平台繁忙，请稍后重试", status=self.state.fail_status)
        try:
            record = msgspec.json.decode(body)
        except msgspec.DecodeError:
            return self._answer("E400", "报文不是合法的 JSON", status=400)
        problems = validate(record)
        if problems:
            self.state.rejected.append({"record": record, "problems": problems})
            return self._answer("E400", "报文校验失败", {"errors": problems}, status=400)
        record_id = str(record["sjwybs"])
        if record_id in self.state.records:
            return self._answer("0000", "重复上报，已忽略", {"sjwybs": record_id, "duplicate": True})
        case, sequence = str(record["sblsh"]), int(record["xh"])
        if sequence <= self.state.last_sequence.get(case, 0):
            problem = f"xh: {sequence} after {self.state.last_sequence[case]} for the same case"
            self.state.rejected.append({"record": record, "problems": [problem]})
            return self._answer("E409", "办件过程顺序错误", {"errors": [problem]}, status=409)
        self.state.last_sequence[case] = sequence
        day = dt.datetime.fromisoformat(str(record["fssj"])).astimezone(DISTRICT_TZ).date()
        self.state.records[record_id] = StoredRecord(record=record, day=day)
        return self._answer("0000", "接收成功", {"sjwybs": record_id, "duplicate": False})

    async def _count(self, request: web.Request) -> web.Response:
        if not self._authentic(request, b""):
            return self._answer("E401", "签名校验失败", status=401)
        raw = request.query.get("day", "")
        if not _DATE.match(raw) or request.query.get("region") != self.target.region:
            return self._answer("E400", "day (YYYY-MM-DD) and region are required", status=400)
        day = dt.date.fromisoformat(raw)
        counts = [{"bjzt": status, "count": n} for status, n in sorted(self.counts(day).items())]
        return self._answer("0000", "查询成功", {"day": raw, "counts": counts})

    async def _set_faults(self, request: web.Request) -> web.Response:
        if request.remote not in ("127.0.0.1", "::1"):
            return self._answer("E403", "loopback only", status=403)
        spec = msgspec.json.decode(await request.read())
        self.fail_next(int(spec.get("fail_next", 0)), int(spec.get("status", 503)))
        return self._answer("0000", "ok", {"fail_next": self.state.fail_remaining})

    async def _drop(self, request: web.Request) -> web.Response:
        if request.remote not in ("127.0.0.1", "::1"):
            return self._answer("E403", "loopback only", status=403)
        self.drop(request.match_info["record_id"])
        return self._answer("0000", "ok")


@contextlib.asynccontextmanager
async def run_province_platform(
    platform: ProvincePlatformSimulator, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve ``platform`` (port 0: an ephemeral one); yields its base URL (set it as ``ONEWINDOW_PROVINCE_URL``)."""
    runner = web.AppRunner(platform.build_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or ()
    bound = sockets[0].getsockname()[1] if sockets else port
    try:
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()


__all__ = ["ProvincePlatformSimulator", "run_province_platform", "validate"]
