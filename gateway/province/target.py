"""The provincial platform as data: ``config/province/platform.toml`` decodes into a `ProvinceTarget` — URL and
paths, authentication (the connectors' styles: HMAC, API key, none), timeouts, retry and the field mapping from our
record fields (`RECORD_FIELDS`) to the platform's names. Every record field must be mapped."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final

import msgspec
import msgspec.toml

from connectors.spec import ApiKeyAuth, HmacAuth, NoAuth, Timeouts

TARGET_FILE: Final = Path("province") / "platform.toml"

#: Our names of a case record's fields (docs/province.md says what each holds).
RECORD_FIELDS: Final[tuple[str, ...]] = (
    "record_id",
    "kind",
    "sequence",
    "case_number",
    "item_code",
    "item_name",
    "region",
    "system_code",
    "department",
    "department_name",
    "status",
    "occurred_at",
    "accepted",
    "accepted_at",
    "promised_days",
    "promised_date",
    "applicant_type",
    "applicant_name",
    "applicant_id_type",
    "applicant_id_number",
    "handling_unit",
    "not_accepted_reason",
    "step",
    "action",
    "step_started_at",
    "step_ended_at",
    "opinion",
    "actor",
    "procedure_kind",
    "procedure_started_at",
    "procedure_ended_at",
    "procedure_reason",
    "completed_at",
    "result",
    "result_text",
    "certificate_name",
    "certificate_number",
    "delivered_at",
    "delivery_method",
    "satisfaction",
)

ProvinceAuth = HmacAuth | ApiKeyAuth | NoAuth


class ReportRetry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A failed report waits ``initial_backoff`` × 2^(attempts-1) seconds (at most ``max_backoff``, plus up to a
    quarter more at random) before the next attempt; ``batch`` reports at most per round."""

    initial_backoff: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    max_backoff: Annotated[float, msgspec.Meta(gt=0)] = 900.0
    batch: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 200


class ProvinceTarget(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    base_url: str
    records_path: str
    counts_path: str
    region: Annotated[str, msgspec.Meta(pattern=r"^\d{6}$")]
    system_code: str
    fields: dict[str, str]
    result_code: str = "code"
    result_ok: str = "0000"
    enabled: bool = True
    auth: ProvinceAuth = NoAuth()
    timeouts: Timeouts = Timeouts()
    retry: ReportRetry = ReportRetry()

    def rebased(self, base_url: str) -> ProvinceTarget:
        return msgspec.structs.replace(self, base_url=base_url.rstrip("/"))

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path


class PlatformError(Exception):
    """The platform did not take a report or answer a query. ``unavailable``: unreachable, timed out or 5xx."""

    def __init__(self, message: str, *, unavailable: bool) -> None:
        super().__init__(message)
        self.unavailable = unavailable


class TargetError(ValueError):
    """The platform file is invalid; the message reads ``file: field: message``."""


def decode_target(data: bytes, *, source: str = "<province>") -> ProvinceTarget:
    try:
        target = msgspec.toml.decode(data, type=ProvinceTarget, strict=True)
    except msgspec.ValidationError as exc:
        raise TargetError(f"{source}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise TargetError(f"{source}: not valid TOML: {exc}") from None
    missing = [name for name in RECORD_FIELDS if not target.fields.get(name)]
    unknown = sorted(set(target.fields) - set(RECORD_FIELDS))
    if missing:
        raise TargetError(f"{source}: fields: map every record field; missing: {', '.join(missing)}")
    if unknown:
        raise TargetError(f"{source}: fields: not record fields: {', '.join(unknown)}")
    if len(set(target.fields.values())) != len(target.fields):
        raise TargetError(f"{source}: fields: two record fields map to the same platform name")
    if not target.base_url.startswith(("http://", "https://")):
        raise TargetError(f"{source}: base_url: must start with http:// or https://")
    return target


def load_target(config_dir: Path, base_url: str = "") -> ProvinceTarget | None:
    """The platform under ``config_dir`` (rebased onto ``base_url`` when given); None without a file."""
    path = Path(config_dir) / TARGET_FILE
    if not path.is_file():
        return None
    target = decode_target(path.read_bytes(), source=str(path))
    return target.rebased(base_url) if base_url else target


__all__ = [
    "RECORD_FIELDS",
    "TARGET_FILE",
    "PlatformError",
    "ProvinceTarget",
    "ReportRetry",
    "TargetError",
    "decode_target",
    "load_target",
]
