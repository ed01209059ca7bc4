"""The unified e-certificate (电子证照) model, after GB/T 36903 metadata, and its canonical signing encoding.

Every department system speaks its own field names; connectors map them onto `Certificate`. Issuers sign the
canonical encoding of the unified fields (`canonical_bytes`), so a signature verifies whatever wire format
carried the certificate.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import msgspec

#: 持证主体代码类型: 111 = 公民身份号码 (citizen ID), 001 = 统一社会信用代码 (USCC).
HolderCodeType = Literal["111", "001"]
#: One ministry's status codes: 01 有效, 02 暂扣, 03 撤销, 04 注销, 05 失效, 06 转出, 07 吊销, 99 其他.
CertificateStatus = Literal["01", "02", "03", "04", "05", "06", "07", "99"]
STATUS_NAMES: dict[str, str] = {
    "01": "有效",
    "02": "暂扣",
    "03": "撤销",
    "04": "注销",
    "05": "失效",
    "06": "转出",
    "07": "吊销",
    "99": "其他",
}
SignatureAlgorithm = Literal["ed25519", "ecdsa-p256-sha256"]


class Signature(msgspec.Struct, frozen=True, kw_only=True):
    """The issuer's signature over `canonical_bytes` of the certificate."""

    alg: SignatureAlgorithm
    key_id: str
    value: str  # base64 (standard alphabet, padded)


class Certificate(msgspec.Struct, frozen=True, kw_only=True):
    """One e-certificate as issued (GB/T 36903 metadata). Untrusted until `Verification.status == "valid"`."""

    identifier: str  # 电子证照标识, GB/T 36904, MOD 37,36 check character
    number: str  # 证照编号
    type_key: str  # our registry key, e.g. "resident_id_card"
    type_code: str  # 证照类型代码: defining authority's USCC + 3 digits
    name: str  # 证照名称
    holder_name: str  # 持证主体
    holder_code: str  # 持证主体代码
    holder_code_type: HolderCodeType  # 持证主体代码类型
    issuer_name: str  # 颁发机构
    issuer_code: str  # 颁发机构代码 (USCC)
    issue_date: dt.date  # 颁发日期
    valid_from: dt.date  # 有效期起始
    valid_until: dt.date | None = None  # 有效期截至; None = long-term (长期)
    status: CertificateStatus = "01"
    division_code: str = "430302"  # 管辖属地编码
    #: Type-specific facts printed on the certificate (e.g. disability category and grade), strings only.
    attributes: dict[str, str] = {}
    signature: Signature | None = None


#: The fields an issuer signs, in the order they are listed here (the encoding sorts keys anyway).
SIGNED_FIELDS: tuple[str, ...] = (
    "identifier",
    "number",
    "type_code",
    "name",
    "holder_name",
    "holder_code",
    "holder_code_type",
    "issuer_name",
    "issuer_code",
    "issue_date",
    "valid_from",
    "valid_until",
    "status",
    "division_code",
    "attributes",
)

_CANONICAL = msgspec.json.Encoder(order="sorted")


def canonical_bytes(certificate: Certificate) -> bytes:
    """Canonical encoding the issuer signs: compact JSON, keys sorted, dates ISO 8601, UTF-8, no signature.

    ``type_key`` is ours, not the issuer's, so it is not signed; ``type_code`` is.
    """
    payload: dict[str, Any] = {name: getattr(certificate, name) for name in SIGNED_FIELDS}
    return _CANONICAL.encode(payload)


VerificationStatus = Literal[
    "valid",
    "unsigned",
    "untrusted_issuer",
    "bad_signature",
    "invalid_identifier",
    "expired",
    "revoked",
    "wrong_holder",
]


class Verification(msgspec.Struct, frozen=True, kw_only=True):
    status: VerificationStatus
    reason: str = ""
    key_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "valid"


class FetchedCertificate(msgspec.Struct, frozen=True, kw_only=True):
    """A certificate as pulled from a department, with where and when it came from and whether it verified."""

    certificate: Certificate
    source_department: str
    fetched_at: dt.datetime
    verification: Verification
    #: The department's own change marker (updated_at / version), for incremental sync.
    source_updated_at: dt.datetime | None = None
