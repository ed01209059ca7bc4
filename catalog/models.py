"""The catalog's data model: service items and their materials, and the registries they refer to
(departments, certificate types, organisation units).

Every Struct is frozen and refuses unknown fields, so a typo in a data file is an error, not a silently
ignored key. `Item` is what the data files hold (政务服务事项实施清单); `PublicItem` is the shape the API and
`onewindow catalog export` give out (the item fields docs/api.md#catalog fixes, plus a few more).

Value types only: the loaded catalog with its lookups and search index is `catalog.catalog.Catalog`.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec

Level = Literal["street", "community"]
Status = Literal["concept", "published"]
Source = Literal["certificate", "applicant"]
Form = Literal["paper", "electronic"]
UnitLevel = Literal["district", "street", "community", "grid"]
#: Trust level of a material (互联网+政务服务 technical guide, 2016): A an e-certificate or document signed by its
#: issuer; B a copy a window clerk verified against the original; C an applicant's upload not yet verified; D the
#: applicant's own statement under a written commitment (告知承诺). docs/domain.md#trust-levels.
TrustLevel = Literal["A", "B", "C", "D"]
TRUST_LEVELS: tuple[TrustLevel, ...] = ("A", "B", "C", "D")
TRUST_LEVEL_NAMES: dict[str, str] = {
    "A": "电子证照（签发机构签名）",
    "B": "窗口核验原件的复印件",
    "C": "申请人上传、未核验",
    "D": "告知承诺",
}
#: Working days the 事后核查 of a commitment may take when an item does not declare its own.
DEFAULT_COMMITMENT_CHECK_DAYS = 20


def level_rank(level: str | None) -> int:
    """A = 4 … D = 1; no level (nothing there) = 0."""
    return {"A": 4, "B": 3, "C": 2, "D": 1}.get(level or "", 0)


LEVELS: tuple[Level, ...] = ("street", "community")

#: 事项类型 codes of the national implementation lists (docs/domain.md#service-items). Items store the code.
ITEM_TYPES: dict[str, str] = {
    "01": "行政许可",
    "05": "行政给付",
    "07": "行政确认",
    "10": "其他行政权力",
    "20": "公共服务",
}

#: 持证主体代码类型: 111 citizen ID number, 001 unified social credit code.
HOLDER_CODE_TYPES: dict[str, str] = {"111": "公民身份号码", "001": "统一社会信用代码"}


class _Model(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base for data-file models: immutable, keyword-only, strict about keys."""


class Material(_Model, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One 申请材料 of an item. ``source == "certificate"`` means a department e-certificate can supply it."""

    key: str
    name: str
    #: 必要性: False for conditional materials; ``condition`` then says when they are needed.
    required: bool
    #: 材料形式 the window accepts.
    form: Form
    source: Source
    certificate_type: str | None = None
    condition: str = ""
    #: 纸质份数 when handed in on paper.
    copies: int = 1
    #: The lowest trust level acceptance takes for it (A > B > C > D). C (an upload) by default, as windows
    #: always took scans; B asks the clerk to verify the copy against the original; A only an e-certificate.
    min_level: TrustLevel = "C"
    #: 告知承诺: when not empty, the applicant may replace the material with this written commitment (level D),
    #: checked afterwards (事后核查) within the item's ``commitment_check_days``.
    commitment: str = ""
    #: A verified copy (B) may be kept in the applicant's evidence store and offered again to any item that needs a
    #: material of the same key (一次提交、多次复用). False for item-specific forms.
    reusable: bool = True


class Item(_Model, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One service item (事项) as the data files declare it."""

    code: str
    name: str
    level: Level
    #: A key of `ITEM_TYPES` ("05" = 行政给付).
    item_type: str
    #: A department code from the registry.
    department: str
    legal_basis: str
    #: 法定办结时限, working days.
    legal_days: int
    #: 承诺办结时限, working days, never more than ``legal_days``.
    promised_days: int
    #: 到办事现场次数: 0, 1 or 2.
    visits: int
    online: bool
    #: Fee in yuan; 0 when free.
    fee: int
    conditions: str
    steps: tuple[str, ...]
    materials: tuple[Material, ...]
    version: int
    status: Status
    valid_from: dt.date
    valid_until: dt.date | None = None
    #: Street item this community item accepts or handles on behalf of (受理/代办).
    on_behalf_of: str | None = None
    fee_basis: str = ""
    #: 服务对象.
    service_object: str = "自然人"
    #: 审批结果名称.
    result: str = ""
    #: Extra search words (common short names such as 低保).
    keywords: tuple[str, ...] = ()
    #: When the result (审批结果) is itself a certificate: its type key in the registry. An approved case then gets
    #: an e-certificate of the district, signed by the gateway and stored for later prefill.
    result_certificate: str | None = None
    #: Working days within which a commitment (告知承诺) accepted for this item is checked (事后核查).
    commitment_check_days: int = DEFAULT_COMMITMENT_CHECK_DAYS

    @property
    def item_type_name(self) -> str:
        return ITEM_TYPES.get(self.item_type, "")

    @property
    def certificate_types(self) -> tuple[str, ...]:
        """Certificate types this item's materials can come from, in material order, without repeats."""
        seen: dict[str, None] = {}
        for m in self.materials:
            if m.certificate_type:
                seen.setdefault(m.certificate_type, None)
        return tuple(seen)

    def is_offered(self, today: dt.date) -> bool:
        """Published and valid on ``today`` (valid_until inclusive): what windows may offer."""
        return (
            self.status == "published"
            and self.valid_from <= today
            and (self.valid_until is None or today <= self.valid_until)
        )

    def material(self, key: str) -> Material | None:
        for m in self.materials:
            if m.key == key:
                return m
        return None

    def to_public(self, department_name: str = "") -> PublicItem:
        return PublicItem(
            code=self.code,
            name=self.name,
            level=self.level,
            item_type=self.item_type,
            item_type_name=self.item_type_name,
            department=self.department,
            department_name=department_name,
            legal_basis=self.legal_basis,
            legal_days=self.legal_days,
            promised_days=self.promised_days,
            visits=self.visits,
            online=self.online,
            fee=self.fee,
            materials=[
                PublicMaterial(
                    key=m.key,
                    name=m.name,
                    required=m.required,
                    source=m.source,
                    certificate_type=m.certificate_type,
                    form=m.form,
                    condition=m.condition,
                    min_level=m.min_level,
                    commitment=m.commitment,
                    reusable=m.reusable,
                )
                for m in self.materials
            ],
            status=self.status,
            version=self.version,
            valid_from=self.valid_from,
            valid_until=self.valid_until,
            on_behalf_of=self.on_behalf_of,
            conditions=self.conditions,
            steps=list(self.steps),
            service_object=self.service_object,
            result=self.result,
            fee_basis=self.fee_basis,
            result_certificate=self.result_certificate,
            commitment_check_days=self.commitment_check_days,
        )


class PublicMaterial(msgspec.Struct, kw_only=True):
    key: str
    name: str
    required: bool
    source: Source
    certificate_type: str | None
    form: Form
    condition: str = ""
    min_level: TrustLevel = "C"
    commitment: str = ""
    reusable: bool = True


class PublicItem(msgspec.Struct, kw_only=True):
    """An item as the API and the export show it: the fields docs/api.md#catalog fixes first, then extras."""

    code: str
    name: str
    level: Level
    item_type: str
    department: str
    legal_basis: str
    legal_days: int
    promised_days: int
    visits: int
    online: bool
    fee: int
    materials: list[PublicMaterial]
    status: Status
    item_type_name: str = ""
    department_name: str = ""
    version: int = 1
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    on_behalf_of: str | None = None
    conditions: str = ""
    steps: list[str] = []
    service_object: str = ""
    result: str = ""
    fee_basis: str = ""
    result_certificate: str | None = None
    commitment_check_days: int = DEFAULT_COMMITMENT_CHECK_DAYS


class Department(_Model, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A district department (实施主体) that items belong to and that may issue certificates."""

    code: str
    name: str
    uscc: str


class CertificateType(_Model, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An e-certificate type (证照类型) as GB/T 36902 describes it."""

    key: str
    name: str
    #: 证照定义机构 and its USCC; ``type_code`` is that USCC plus a 3-digit sequence.
    definer: str
    definer_uscc: str
    type_code: str
    #: Department code (registry) whose system issues it in the district.
    issuing_department: str
    holder_code_type: str


class Unit(_Model, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An organisation unit: the district, a street/town, a community/village, or a grid (网格)."""

    code: str
    name: str
    level: UnitLevel
    #: 街道 / 镇 / 乡 / 社区 / 村 / 网格.
    kind: str
    parent: str | None = None
    uscc: str | None = None
