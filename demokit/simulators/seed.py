"""Deterministic synthetic citizens of Yuhu District and the certificates the departments hold for them.

SAMPLE DATA: every person, number and address here is invented. ``generate_population(seed, n)`` draws households
(families, elderly couples, people living alone, migrant households) from ``random.Random(seed)``, gives each member
a valid GB 11643 number, a plausible name, phone and address in the district's sample units, and then issues the
certificates a person of that age and situation would hold, by plausible rules. Each certificate carries a GB/T
36904 identifier and is signed by its issuing department's demo key over `connectors.model.canonical_bytes`.

Ages and validity are computed against ``as_of`` (default: today in Asia/Shanghai), so the same seed on the same day
gives the same citizens, numbers and identifiers; the names, ID numbers and households depend on the seed alone
only as long as ``as_of`` is fixed (tests pass one).

No certificate attribute holds personal data beyond the holder fields themselves (no addresses, no other people's
names); note that, as in the real systems, the number of a 居民身份证 *is* the holder's ID number and a 残疾人证 number
starts with it.
"""

from __future__ import annotations

import base64
import datetime as dt
import gc
import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from catalog.calendar import DISTRICT_TZ
from catalog.codes import certificate_identifier, citizen_id_check_char
from connectors.model import Certificate, CertificateStatus, Signature, SignatureAlgorithm, canonical_bytes
from connectors.trust import IssuerPrivateKey, issuer_algorithm, issuer_key_id, issuer_private_key, sign_bytes
from demokit.simulators.registry import CERTIFICATE_TYPES, DEPARTMENTS

DIVISION = "430302"
_EARLIEST_BIRTH = dt.date(1930, 1, 1)
_LATEST_BIRTH = dt.date(2024, 12, 31)
#: Certificates were deposited electronically from this date on; older ones got their updated_at then.
_DEPOSIT_START = dt.date(2019, 1, 1)

Gender = Literal["male", "female"]


class Citizen(msgspec.Struct, frozen=True, kw_only=True):
    """A synthetic resident and the certificates the department systems hold for them (signed)."""

    id_number: str
    name: str
    gender: Gender
    birth_date: dt.date
    ethnicity: str
    phone: str
    street: str  # 街道
    community: str  # 社区
    address: str
    #: 户号 of the household register here; empty for migrants registered elsewhere (they hold a 居住证).
    household_number: str
    relation: str  # 与户主关系
    certificates: tuple[Certificate, ...] = ()

    @property
    def certificate_types(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.type_key for c in self.certificates))

    @property
    def departments(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(CERTIFICATE_TYPES[c.type_key].department for c in self.certificates))


class SeededCertificate(msgspec.Struct, frozen=True, kw_only=True):
    """A certificate as a department system stores it: with its issuing department and last change time."""

    certificate: Certificate
    department: str
    updated_at: dt.datetime  # aware, Asia/Shanghai, whole seconds


class Population(msgspec.Struct, frozen=True, kw_only=True):
    seed: int
    as_of: dt.date
    citizens: list[Citizen]
    certificates: list[SeededCertificate]

    def by_department(self, code: str) -> list[SeededCertificate]:
        return [c for c in self.certificates if c.department == code]

    def citizen(self, id_number: str) -> Citizen | None:
        return next((c for c in self.citizens if c.id_number == id_number), None)


# --- sample units and names ----------------------------------------------------------------------------------

#: SAMPLE organisation of the district: streets → communities → residential compounds. The units named in the source
#: article are used; the others are plausible inventions.
UNITS: dict[str, dict[str, tuple[str, ...]]] = {
    "窑湾街道": {
        "洗脚桥社区": ("白石古莲城", "洗脚桥小区", "湘江苑"),
        "罗祖殿社区": ("罗祖殿小区", "窑湾人家", "沿江风光苑"),
        "窑湾社区": ("唐兴街小区", "窑湾古街小区"),
    },
    "昭潭街道": {
        "宝庆路社区": ("天隆小区", "宝庆花园", "平政路小区"),
        "和平社区": ("新景家园", "和平里小区"),
        "湘江社区": ("莲城名苑", "江景花园"),
    },
    "城正街街道": {
        "熙春路社区": ("熙春花园", "建设新村"),
        "大埠桥社区": ("大埠桥小区", "湖湘嘉园"),
    },
    "雨湖路街道": {
        "雨湖社区": ("雨湖人家", "壶山小区"),
        "白石社区": ("白石新村", "韶峰小区"),
    },
    "广场街道": {
        "韶山路社区": ("韶山西路小区", "金侨花园"),
        "人民路社区": ("人民路小区",),
    },
    "云塘街道": {
        "云塘社区": ("云塘新村", "梦泽家园"),
        "先锋社区": ("先锋小区", "和平桥小区"),
    },
}
#: Divisions people were born (or registered) in before moving to Yuhu: Xiangtan's counties and further afield.
_OTHER_DIVISIONS = (
    "430321",  # 湘潭县
    "430381",  # 湘乡市
    "430382",  # 韶山市
    "430104",  # 长沙市岳麓区
    "430111",  # 长沙市雨花区
    "430202",  # 株洲市荷塘区
    "430502",  # 邵阳市双清区
    "430602",  # 岳阳市岳阳楼区
    "431102",  # 永州市零陵区
    "431202",  # 怀化市鹤城区
    "420106",  # 武汉市武昌区
    "360302",  # 萍乡市安源区
    "440305",  # 深圳市南山区
)
_SURNAMES = (
    ("刘", 9), ("李", 9), ("王", 8), ("张", 8), ("陈", 8), ("唐", 5), ("彭", 5), ("周", 5), ("胡", 5), ("谭", 6),
    ("黄", 5), ("杨", 5), ("易", 3), ("罗", 4), ("曾", 4), ("赵", 3), ("吴", 3), ("邓", 3), ("欧阳", 2), ("龙", 2),
    ("肖", 3), ("蒋", 2), ("何", 2), ("贺", 2), ("许", 2), ("石", 2), ("文", 2), ("郭", 2), ("廖", 2), ("朱", 2),
    ("徐", 2), ("孙", 1), ("马", 1), ("高", 1), ("林", 1), ("袁", 2), ("颜", 1), ("段", 1), ("毛", 1), ("向", 1),
    ("龚", 1), ("谢", 2), ("宋", 1), ("郑", 1), ("韩", 1), ("冯", 1), ("姜", 1), ("戴", 1), ("钟", 1), ("汤", 1),
)  # fmt: skip
_SURNAME_NAMES = tuple(s for s, _ in _SURNAMES)
_SURNAME_CUMULATIVE = tuple(itertools.accumulate(w for _, w in _SURNAMES))
#: Given-name characters by era and gender: names follow fashions.
_GIVEN = {
    ("old", "male"): "建国德明志华国庆卫东春生秋生福贵永清玉林正平树根长青桂生炳荣光辉水清金山",
    ("old", "female"): "秀英桂英玉兰淑珍凤英翠兰秋菊桂香春梅冬梅爱华素珍美玉月娥金凤菊香",
    ("mid", "male"): "伟强军勇杰涛明辉斌磊鹏超华建志刚文平亮波峰俊海林勇兵",
    ("mid", "female"): "芳娟敏静丽艳霞红梅玲燕琴慧莉娜萍蓉英华红兰",
    ("young", "male"): "浩宇轩子豪博睿航泽晨俊杰涛鑫磊宏阳旭鹏飞毅哲瑞",
    ("young", "female"): "婷雪琳欣怡涵萱雨佳悦诗梓琪思颖晴瑶彤妍露倩蕾菲",
}
_ETHNICITIES = (("汉", 970), ("土家", 12), ("苗", 8), ("侗", 3), ("瑶", 3), ("回", 2), ("壮", 1), ("满", 1))
_ETHNICITY_NAMES = tuple(e for e, _ in _ETHNICITIES)
_ETHNICITY_CUMULATIVE = tuple(itertools.accumulate(w for _, w in _ETHNICITIES))
_PHONE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "153", "155", "156",
    "157", "158", "159", "166", "173", "176", "177", "180", "181", "182", "183", "186", "187", "188", "189",
    "191", "199",
)  # fmt: skip
_BANKS = ("中国工商银行", "中国农业银行", "中国银行", "中国建设银行", "交通银行", "湖南农信", "湘潭农商银行")
_HOSPITALS = (
    "湘潭市中心医院",
    "湘潭市第一人民医院",
    "湘潭市妇幼保健院",
    "湘潭市第二人民医院",
    "雨湖区妇幼保健计划生育服务中心",
)
#: (category, code digit in the certificate number, weight)
_DISABILITY_CATEGORIES = (
    ("视力", "1", 13), ("听力", "2", 15), ("言语", "3", 2), ("肢体", "4", 45),
    ("智力", "5", 8), ("精神", "6", 10), ("多重", "7", 7),
)  # fmt: skip
_DISABILITY_GRADES = (("一级", "1", 12), ("二级", "2", 25), ("三级", "3", 30), ("四级", "4", 33))
_RESIDENCE_REASONS = ("务工", "经商", "就学", "投靠亲属", "其他")
_VETERAN_CATEGORIES = (("退役士兵", 85), ("退役军官", 8), ("退休军官", 4), ("伤残军人", 3))
#: Urban subsistence allowance standard in Xiangtan, yuan per person per month (sample value).
_SUBSISTENCE_STANDARD = 680


# --- the generator -----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Person:
    id_number: str
    name: str
    gender: Gender
    birth: dt.date
    ethnicity: str
    phone: str
    relation: str
    surname: str
    local_birth: bool  # born in Yuhu (ID division 430302)
    certificates: list[tuple[Certificate, dt.datetime]] = field(default_factory=list)


@dataclass(slots=True)
class _Household:
    street: str
    community: str
    address: str
    number: str  # 户号, "" for migrants
    registered_since: dt.date
    married: dt.date | None = None  # of the first two members, when they are a couple
    members: list[_Person] = field(default_factory=list)


class _Generator:
    def __init__(self, seed: int, as_of: dt.date) -> None:
        self.rng = random.Random(seed)
        self.as_of = as_of
        #: Nothing is issued or changed later than yesterday: today's changes are the simulator's own (touch).
        self.last_day = as_of - dt.timedelta(days=1)
        self.latest_birth = min(_LATEST_BIRTH, self.last_day)
        self.ids: set[str] = set()
        self.numbers: set[str] = set()
        self.counters: dict[str, int] = {}
        self.household_seq = 0
        self.keys: dict[str, IssuerPrivateKey] = {code: issuer_private_key(code) for code in DEPARTMENTS}

    # dates ------------------------------------------------------------------------------------------------------
    def between(self, start: dt.date, end: dt.date) -> dt.date:
        if end <= start:
            return start
        # random() * n is several times cheaper than randint and just as deterministic
        return start + dt.timedelta(days=int(self.rng.random() * ((end - start).days + 1)))

    @staticmethod
    def plus_years(day: dt.date, years: int) -> dt.date:
        try:
            return day.replace(year=day.year + years)
        except ValueError:  # 29 February
            return day.replace(year=day.year + years, day=28)

    def age(self, birth: dt.date) -> int:
        return self.as_of.year - birth.year - ((self.as_of.month, self.as_of.day) < (birth.month, birth.day))

    def birth_in(self, first_year: int, last_year: int, mode_year: int | None = None) -> dt.date:
        """A birth date in the years given; with ``mode_year``, most likely around that year (fewer of the oldest)."""
        start = max(dt.date(first_year, 1, 1), _EARLIEST_BIRTH)
        end = min(dt.date(last_year, 12, 31), self.latest_birth)
        if mode_year is None or end <= start:
            return self.between(start, end)
        span = (end - start).days
        mode = min(max((dt.date(mode_year, 7, 1) - start).days, 0), span)
        return start + dt.timedelta(days=int(self.rng.triangular(0, span, mode)))

    def updated_at(self, issued: dt.date) -> dt.datetime:
        day = self.between(max(issued, _DEPOSIT_START), self.last_day)
        seconds = 8 * 3600 + 1800 + int(self.rng.random() * 9.5 * 3600)
        return dt.datetime.combine(day, dt.time(), DISTRICT_TZ) + dt.timedelta(seconds=seconds)

    # people -----------------------------------------------------------------------------------------------------
    def id_number(self, division: str, birth: dt.date, gender: Gender) -> str:
        while True:
            seq = self.rng.randint(0, 99) * 10 + self.rng.randrange(1 if gender == "male" else 0, 10, 2)
            first17 = f"{division}{birth:%Y%m%d}{seq:03d}"
            number = first17 + citizen_id_check_char(first17)
            if number not in self.ids:
                self.ids.add(number)
                return number

    def given_name(self, birth: dt.date, gender: Gender) -> str:
        era = "old" if birth.year < 1960 else "mid" if birth.year < 1990 else "young"
        pool = _GIVEN[(era, gender)]
        if era == "old" and self.rng.random() < 0.8:  # two-character names were the rule then
            start = self.rng.randrange(0, len(pool) - 1, 2)
            return pool[start : start + 2]
        if self.rng.random() < 0.35:
            return self.rng.choice(pool)
        return self.rng.choice(pool) + self.rng.choice(pool)

    def surname(self) -> str:
        return self.rng.choices(_SURNAME_NAMES, cum_weights=_SURNAME_CUMULATIVE)[0]

    def phone(self) -> str:
        return self.rng.choice(_PHONE_PREFIXES) + f"{self.rng.randint(0, 99_999_999):08d}"

    def person(
        self,
        gender: Gender,
        birth: dt.date,
        relation: str,
        *,
        division: str,
        surname: str | None = None,
        phone: str | None = None,
    ) -> _Person:
        ethnicity = self.rng.choices(_ETHNICITY_NAMES, cum_weights=_ETHNICITY_CUMULATIVE)[0]
        surname = surname or self.surname()
        return _Person(
            id_number=self.id_number(division, birth, gender),
            name=surname + self.given_name(birth, gender),
            gender=gender,
            birth=birth,
            ethnicity=ethnicity,
            phone=phone or self.phone(),
            relation=relation,
            surname=surname,
            local_birth=division == DIVISION,
        )

    def adult_division(self, migrant_origin: str | None) -> str:
        if migrant_origin is not None:
            return migrant_origin
        return DIVISION if self.rng.random() < 0.82 else self.rng.choice(_OTHER_DIVISIONS)

    # certificates -----------------------------------------------------------------------------------------------
    def serial(self, type_key: str, issued: dt.date) -> str:
        n = self.counters.get(type_key, 0) + 1
        self.counters[type_key] = n
        return f"{issued.year}{n:07d}"

    def seq(self, name: str) -> int:
        n = self.counters.get(name, 0) + 1
        self.counters[name] = n
        return n

    def issue(
        self,
        person: _Person,
        type_key: str,
        *,
        number: str,
        issued: dt.date,
        valid_until: dt.date | None,
        attributes: dict[str, str],
        status: CertificateStatus = "01",
    ) -> Certificate:
        info = CERTIFICATE_TYPES[type_key]
        issuer = DEPARTMENTS[info.department]
        certificate = Certificate(
            identifier=certificate_identifier(info.type_code, issuer.uscc, self.serial(type_key, issued)),
            number=number,
            type_key=type_key,
            type_code=info.type_code,
            name=info.name,
            holder_name=person.name,
            holder_code=person.id_number,
            holder_code_type="111",
            issuer_name=issuer.name,
            issuer_code=issuer.uscc,
            issue_date=issued,
            valid_from=issued,
            valid_until=valid_until,
            status=status,
            division_code=DIVISION,
            attributes=attributes,
        )
        person.certificates.append((certificate, self.updated_at(issued)))
        return certificate

    def resident_id_card(self, person: _Person) -> None:
        """The current card: second-generation cards from 2004, renewed on expiry (a few people let it lapse)."""
        sixteen = self.plus_years(person.birth, 16)
        issued = max(
            sixteen + dt.timedelta(days=self.rng.randint(0, 400)),
            self.between(dt.date(2004, 1, 1), dt.date(2013, 12, 31)),
        )
        if issued > self.last_day:
            issued = self.between(sixteen, self.last_day)
        while True:
            age = issued.year - person.birth.year
            years = 10 if age < 26 else 20 if age < 46 else None
            until = None if years is None else self.plus_years(issued, years) - dt.timedelta(days=1)
            if until is None or until >= self.last_day or self.rng.random() < 0.03:
                break
            renewed = until - dt.timedelta(days=self.rng.randint(0, 90))
            if renewed > self.last_day:
                break
            issued = renewed
        self.issue(
            person,
            "resident_id_card",
            number=person.id_number,
            issued=issued,
            valid_until=until,
            attributes={"sex": "男" if person.gender == "male" else "女", "ethnicity": person.ethnicity},
        )

    def household_register(self, person: _Person, household: _Household, household_type: str) -> None:
        self.issue(
            person,
            "household_register",
            number=household.number,
            issued=max(person.birth, household.registered_since),
            valid_until=None,
            attributes={
                "household_number": household.number,
                "relation": person.relation,
                "household_type": household_type,
            },
        )

    def residence_permit(self, person: _Person, origin: str) -> None:
        issued = self.between(self.last_day - dt.timedelta(days=420), self.last_day)
        self.issue(
            person,
            "residence_permit",
            number=f"JZ{DIVISION}{issued:%y}{self.seq('residence_permit_no'):06d}",
            issued=issued,
            valid_until=self.plus_years(issued, 1) - dt.timedelta(days=1),
            attributes={"origin_division": origin, "reason": self.rng.choice(_RESIDENCE_REASONS)},
        )

    def marriage(self, a: _Person, b: _Person, married: dt.date, *, dissolved: bool = False) -> None:
        number = f"J{DIVISION}-{married.year}-{self.seq('marriage_no'):06d}"
        for person in (a, b):
            self.issue(
                person,
                "marriage_certificate",
                number=number,
                issued=married,
                valid_until=None,
                attributes={"registration": "结婚登记"},
                status="04" if dissolved else "01",  # 注销 once the marriage is dissolved
            )

    def divorce(self, person: _Person, divorced: dt.date) -> None:
        self.issue(
            person,
            "divorce_certificate",
            number=f"L{DIVISION}-{divorced.year}-{self.seq('divorce_no'):06d}",
            issued=divorced,
            valid_until=None,
            attributes={"registration": "离婚登记"},
        )

    def single_marriage_history(self, person: _Person) -> dt.date | None:
        """A past marriage (to someone not in the district) ended by divorce; returns the divorce date."""
        married_from = self.plus_years(person.birth, 22 if person.gender == "male" else 20)
        if married_from >= self.last_day - dt.timedelta(days=800):
            return None
        married = self.between(
            married_from, min(self.last_day - dt.timedelta(days=700), self.plus_years(married_from, 10))
        )
        divorced = self.between(married + dt.timedelta(days=365), self.last_day)
        if divorced > self.last_day or divorced <= married:
            return None
        self.issue(
            person,
            "marriage_certificate",
            number=f"J{DIVISION}-{married.year}-{self.seq('marriage_no'):06d}",
            issued=married,
            valid_until=None,
            attributes={"registration": "结婚登记"},
            status="04",
        )
        self.divorce(person, divorced)
        return divorced

    def social_security_card(self, person: _Person) -> None:
        # cards are replaced before their ten years run out, so the current one was issued within the last ten
        issued = self.between(
            max(person.birth + dt.timedelta(days=30), self.last_day - dt.timedelta(days=3500)), self.last_day
        )
        while True:
            number = self.rng.choice("ABCDEFGHJK") + f"{self.rng.randint(0, 99_999_999):08d}"
            if number not in self.numbers:
                self.numbers.add(number)
                break
        self.issue(
            person,
            "social_security_card",
            number=number,
            issued=issued,
            valid_until=self.plus_years(issued, 10) - dt.timedelta(days=1),
            attributes={"bank": self.rng.choice(_BANKS), "card_generation": "第三代"},
            status="04" if self.rng.random() < 0.02 else "01",  # a few cancelled (replaced, lost)
        )

    def disability_certificate(self, person: _Person) -> str:
        category, category_digit = self.weighted(_DISABILITY_CATEGORIES)
        grade, grade_digit = self.weighted(_DISABILITY_GRADES)
        issued = self.between(
            max(person.birth + dt.timedelta(days=365), self.last_day - dt.timedelta(days=3650)), self.last_day
        )
        self.issue(
            person,
            "disability_certificate",
            number=person.id_number + category_digit + grade_digit,  # 第二代残疾人证号: ID + 类别 + 等级
            issued=issued,
            valid_until=self.plus_years(issued, 10) - dt.timedelta(days=1),
            attributes={"category": category, "grade": grade},
        )
        return grade

    def weighted(self, table: Sequence[tuple[str, str, int]]) -> tuple[str, str]:
        name, digit, _ = self.rng.choices(table, [w for _, _, w in table])[0]
        return name, digit

    def subsistence_allowance(self, person: _Person, household_size: int) -> None:
        issued = self.between(self.last_day - dt.timedelta(days=330), self.last_day)
        per_person = self.rng.randint(300, _SUBSISTENCE_STANDARD) // 10 * 10
        lapsed = self.rng.random() < 0.05
        self.issue(
            person,
            "subsistence_allowance_certificate",
            number=f"DB{DIVISION}{issued.year}{self.seq('subsistence_no'):05d}",
            issued=issued,
            valid_until=self.plus_years(issued, 1) - dt.timedelta(days=1),
            attributes={
                "category": "城市低保",
                "household_size": str(household_size),
                "monthly_amount": str(per_person * household_size),
            },
            status="05" if lapsed else "01",  # 失效: lost eligibility at the annual review
        )

    def extreme_poverty(self, person: _Person) -> None:
        issued = self.between(self.last_day - dt.timedelta(days=1500), self.last_day)
        self.issue(
            person,
            "extreme_poverty_certificate",
            number=f"TK{DIVISION}{issued.year}{self.seq('extreme_poverty_no'):05d}",
            issued=issued,
            valid_until=None,
            attributes={
                "support_mode": "集中供养" if self.rng.random() < 0.15 else "分散供养",
                "care_level": self.rng.choice(("全自理", "全自理", "半护理", "全护理")),
            },
        )

    def birth_medical_certificate(self, person: _Person) -> None:
        letter = "ABCDEFGHJKLMNOPQRSTU"[(person.birth.year - 1996) % 20]
        issued = min(person.birth + dt.timedelta(days=self.rng.randint(0, 3)), self.last_day)
        self.issue(
            person,
            "birth_medical_certificate",
            number=f"{letter}43{self.seq('birth_no'):07d}",
            issued=issued,
            valid_until=None,
            attributes={
                "sex": "男" if person.gender == "male" else "女",
                "institution": self.rng.choice(_HOSPITALS),
                "birth_place": "湖南省湘潭市雨湖区",
            },
        )

    def only_child_parents(self, parents: Iterable[_Person], child: _Person) -> None:
        issued = self.between(
            child.birth + dt.timedelta(days=200), min(self.plus_years(child.birth, 14), self.last_day)
        )
        number = f"DS{DIVISION}{issued.year}{self.seq('only_child_no'):05d}"
        for parent in parents:
            self.issue(
                parent,
                "only_child_parents_certificate",
                number=number,
                issued=issued,
                valid_until=None,
                attributes={"child_birth_year": str(child.birth.year)},
            )

    def veteran_card(self, person: _Person) -> None:
        category = self.rng.choices([c for c, _ in _VETERAN_CATEGORIES], [w for _, w in _VETERAN_CATEGORIES])[0]
        enlisted = person.birth.year + self.rng.randint(18, 21)
        discharged = enlisted + (self.rng.randint(2, 5) if category == "退役士兵" else self.rng.randint(8, 25))
        discharged = min(discharged, self.last_day.year)
        issued = self.between(max(dt.date(2021, 6, 1), dt.date(discharged, 1, 1)), self.last_day)
        self.issue(
            person,
            "veteran_preferential_card",
            number=f"YD{DIVISION}{self.seq('veteran_no'):08d}",
            issued=issued,
            valid_until=None,
            attributes={"category": category, "enlisted_year": str(enlisted), "discharged_year": str(discharged)},
        )

    # households -------------------------------------------------------------------------------------------------
    def household(self) -> _Household:
        street = self.rng.choice(tuple(UNITS))
        community = self.rng.choice(tuple(UNITS[street]))
        compound = self.rng.choice(UNITS[street][community])
        building, unit = self.rng.randint(1, 24), self.rng.randint(1, 4)
        room = self.rng.randint(1, 18) * 100 + self.rng.randint(1, 4)
        address = f"湖南省湘潭市雨湖区{street}{community}{compound}{building}栋{unit}单元{room}室"
        migrant = self.rng.random() < 0.1
        origin = self.rng.choice(_OTHER_DIVISIONS) if migrant else None
        number = ""
        if not migrant:
            self.household_seq += 1
            number = f"3{self.household_seq:08d}"
        household = _Household(
            street=street,
            community=community,
            address=address,
            number=number,
            registered_since=self.between(dt.date(1990, 1, 1), self.last_day - dt.timedelta(days=400)),
        )
        kind = self.rng.choices(
            ("family", "elderly_couple", "single_elderly", "single_adult", "single_parent", "young_couple"),
            (40, 18, 11, 18, 7, 6),
        )[0]
        getattr(self, f"_{kind}")(household, origin)
        self.household_certificates(household, kind, origin)
        return household

    def _couple(
        self, household: _Household, origin: str | None, first: int, last: int, mode: int | None = None
    ) -> _Person:
        husband_birth = self.birth_in(first, last, mode)
        wife_birth = self.between(husband_birth - dt.timedelta(days=400), husband_birth + dt.timedelta(days=1500))
        wife_birth = min(max(wife_birth, _EARLIEST_BIRTH), self.plus_years(self.last_day, -21))
        husband_head = self.rng.random() < 0.8
        husband = self.person(
            "male", husband_birth, "户主" if husband_head else "配偶", division=self.adult_division(origin)
        )
        wife = self.person(
            "female", wife_birth, "配偶" if husband_head else "户主", division=self.adult_division(origin)
        )
        earliest = max(self.plus_years(husband_birth, 22), self.plus_years(wife_birth, 20))
        if earliest <= self.last_day:
            household.married = self.between(earliest, min(self.plus_years(earliest, 8), self.last_day))
        household.members += [husband, wife] if husband_head else [wife, husband]
        return husband

    def _children(self, household: _Household, origin: str | None, father: _Person, count: int) -> None:
        if household.married is None:
            return
        born = household.married
        for _ in range(count):
            born = born + dt.timedelta(days=self.rng.randint(300, 1400))
            if born > self.latest_birth:
                return
            gender: Gender = "male" if self.rng.random() < 0.52 else "female"
            relation = "子" if gender == "male" else "女"
            phone = father.phone if self.age(born) < 14 else None  # children's contact is a parent's phone
            child = self.person(
                gender, born, relation, division=origin or DIVISION, surname=father.surname, phone=phone
            )
            household.members.append(child)

    def _family(self, household: _Household, origin: str | None) -> None:
        husband = self._couple(household, origin, 1950, 1997, 1982)
        year = household.married.year if household.married else 2100
        if year < 1978:
            count = self.rng.choices((1, 2, 3), (2, 5, 3))[0]
        elif year < 2014:
            count = self.rng.choices((1, 2), (8, 2))[0]
        else:
            count = self.rng.choices((1, 2), (6, 4))[0]
        self._children(household, origin, husband, count)
        if self.rng.random() < 0.2:  # a widowed parent of the head lives with them
            birth = self.between(
                max(self.plus_years(husband.birth, -34), _EARLIEST_BIRTH),
                max(self.plus_years(husband.birth, -22), _EARLIEST_BIRTH),
            )
            gender: Gender = "female" if self.rng.random() < 0.65 else "male"
            household.members.append(
                self.person(gender, birth, "母" if gender == "female" else "父", division=self.adult_division(origin))
            )

    def _elderly_couple(self, household: _Household, origin: str | None) -> None:
        self._couple(household, origin, 1934, 1962, 1956)

    def _young_couple(self, household: _Household, origin: str | None) -> None:
        self._couple(household, origin, 1988, 2001)

    def _single_elderly(self, household: _Household, origin: str | None) -> None:
        gender: Gender = "female" if self.rng.random() < 0.6 else "male"
        household.members.append(
            self.person(gender, self.birth_in(1930, 1960, 1953), "户主", division=self.adult_division(origin))
        )

    def _single_adult(self, household: _Household, origin: str | None) -> None:
        gender: Gender = "male" if self.rng.random() < 0.55 else "female"
        birth = self.birth_in(1965, min(2006, self.last_day.year - 18))
        household.members.append(self.person(gender, birth, "户主", division=self.adult_division(origin)))

    def _single_parent(self, household: _Household, origin: str | None) -> None:
        gender: Gender = "female" if self.rng.random() < 0.7 else "male"
        parent = self.person(gender, self.birth_in(1968, 1995), "户主", division=self.adult_division(origin))
        household.members.append(parent)
        child_gender: Gender = "male" if self.rng.random() < 0.52 else "female"
        child_birth = self.between(
            self.plus_years(parent.birth, 23), min(self.plus_years(parent.birth, 36), self.latest_birth)
        )
        household.members.append(
            self.person(
                child_gender,
                child_birth,
                "子" if child_gender == "male" else "女",
                division=origin or DIVISION,
                surname=parent.surname if gender == "male" or self.rng.random() < 0.3 else None,
                phone=parent.phone if self.age(child_birth) < 14 else None,
            )
        )

    def household_certificates(self, household: _Household, kind: str, origin: str | None) -> None:
        migrant = origin is not None
        members = household.members
        adults = [p for p in members if self.age(p.birth) >= 18]
        household_type = "家庭户"
        # public security: household register entries, ID cards (here only for those registered here), permits
        for person in members:
            if not migrant:
                self.household_register(person, household, household_type)
                if self.age(person.birth) >= 16:
                    self.resident_id_card(person)
            elif origin is not None and self.age(person.birth) >= 16:
                self.residence_permit(person, origin)
        # civil affairs: marriages and divorces
        if household.married is not None and len(members) >= 2:
            self.marriage(members[0], members[1], household.married)
        elif kind == "single_parent" or (
            kind == "single_adult" and self.age(members[0].birth) >= 28 and self.rng.random() < 0.25
        ):
            self.single_marriage_history(members[0])
        # human resources: social security cards
        for person in members:
            age = self.age(person.birth)
            p = (0.55 if migrant else 0.78) if age >= 16 else 0.1
            if self.rng.random() < p:
                self.social_security_card(person)
        # disabled persons' federation
        disabled: dict[int, str] = {}
        for index, person in enumerate(members):
            age = self.age(person.birth)
            p = 0.02 if age < 18 else 0.05 if age < 60 else 0.1
            if self.rng.random() < p:
                disabled[index] = self.disability_certificate(person)
        # civil affairs: assistance (local registration required)
        if not migrant and adults:
            disabled_adults = [members[i] for i in disabled if self.age(members[i].birth) >= 18]
            alone = len(members) == 1
            severe_alone = alone and any(g in {"一级", "二级"} for g in disabled.values())
            if (kind == "single_elderly" and self.rng.random() < 0.14) or (severe_alone and self.rng.random() < 0.4):
                self.extreme_poverty(members[0])
            elif disabled_adults and self.rng.random() < 0.45:
                self.subsistence_allowance(disabled_adults[0], len(members))
            elif self.rng.random() < 0.03:
                self.subsistence_allowance(adults[0], len(members))
        # health: birth certificates (born here from 1996) and only-child parents
        for person in members:
            if person.birth >= dt.date(1996, 1, 1) and (
                person.local_birth or (migrant and person.relation in {"子", "女"} and self.rng.random() < 0.6)
            ):
                self.birth_medical_certificate(person)
        children = [p for p in members if p.relation in {"子", "女"}]
        if (
            not migrant
            and kind == "family"
            and len(children) == 1
            and dt.date(1980, 1, 1) <= children[0].birth <= dt.date(2015, 12, 31)
            and self.rng.random() < 0.5
        ):
            self.only_child_parents(members[:2], children[0])
        # veterans
        for person in members:
            age = self.age(person.birth)
            if migrant or not 20 <= age <= 95:
                continue
            if self.rng.random() < (0.05 if person.gender == "male" else 0.003):
                self.veteran_card(person)


_REAL_ESTATE_USES = (("住宅", 80), ("商业", 8), ("办公", 5), ("工业", 4), ("其他", 3))


def _real_estate(generator: _Generator, pending: Sequence[tuple[_Person, _Household]], seed: int) -> None:
    """不动产权证书 for about half the local households, issued to the first adult member (不动产统一登记, from 2016).

    Drawn from a generator of its own, after everything else, so the other departments' certificates do not
    change with it.
    """
    rng = random.Random(f"{seed}:natural_resources")
    saved, generator.rng = generator.rng, rng
    try:
        seen: set[int] = set()
        for person, household in pending:
            if id(household) in seen:
                continue
            seen.add(id(household))
            if not household.number or person is not household.members[0] or generator.age(person.birth) < 18:
                continue
            if rng.random() >= 0.5:
                continue
            issued = generator.between(
                max(dt.date(2016, 1, 1), generator.plus_years(person.birth, 18)), generator.last_day
            )
            use = rng.choices([u for u, _ in _REAL_ESTATE_USES], weights=[w for _, w in _REAL_ESTATE_USES])[0]
            generator.issue(
                person,
                "real_estate_certificate",
                number=f"湘({issued.year})湘潭市不动产权第{generator.seq('real_estate_no'):07d}号",
                issued=issued,
                valid_until=None,
                attributes={
                    "right_type": "国有建设用地使用权/房屋所有权",
                    "use": use,
                    "area": f"{rng.uniform(38, 160):.2f}",
                },
            )
    finally:
        generator.rng = saved


def _sign_all(
    pending: list[tuple[_Person, _Household]], keys: dict[str, IssuerPrivateKey]
) -> tuple[list[Citizen], list[SeededCertificate]]:
    key_ids = {code: issuer_key_id(code) for code in keys}
    algorithms: dict[str, SignatureAlgorithm] = {code: issuer_algorithm(code) for code in keys}
    citizens: list[Citizen] = []
    seeded: list[SeededCertificate] = []
    for person, household in pending:
        signed: list[Certificate] = []
        for certificate, updated_at in person.certificates:
            department = CERTIFICATE_TYPES[certificate.type_key].department
            value = base64.b64encode(sign_bytes(keys[department], canonical_bytes(certificate))).decode("ascii")
            signature = Signature(alg=algorithms[department], key_id=key_ids[department], value=value)
            certificate = msgspec.structs.replace(certificate, signature=signature)
            signed.append(certificate)
            seeded.append(SeededCertificate(certificate=certificate, department=department, updated_at=updated_at))
        citizens.append(
            Citizen(
                id_number=person.id_number,
                name=person.name,
                gender=person.gender,
                birth_date=person.birth,
                ethnicity=person.ethnicity,
                phone=person.phone,
                street=household.street,
                community=household.community,
                address=household.address,
                household_number=household.number,
                relation=person.relation,
                certificates=tuple(signed),
            )
        )
    return citizens, seeded


def today_in_shanghai() -> dt.date:
    return dt.datetime.now(DISTRICT_TZ).date()


def generate_population(seed: int, citizens: int, *, as_of: dt.date | None = None) -> Population:
    """``citizens`` synthetic residents (whole households, the last one cut to fit) and their signed certificates."""
    if citizens < 0:
        raise ValueError(f"citizens must be 0 or more, got {citizens}")
    day = as_of or today_in_shanghai()
    if day <= dt.date(2000, 1, 1):
        raise ValueError(f"as_of {day} is too early for the sample population")
    # Tens of thousands of new objects and no reference cycles: the cyclic collector would only rescan them,
    # which costs as much as the generation itself.
    collecting = gc.isenabled()
    gc.disable()
    try:
        generator = _Generator(seed, day)
        pending: list[tuple[_Person, _Household]] = []
        while len(pending) < citizens:
            household = generator.household()
            pending.extend((person, household) for person in household.members)
        _real_estate(generator, pending[:citizens], seed)
        people, certificates = _sign_all(pending[:citizens], generator.keys)
    finally:
        if collecting:
            gc.enable()
    return Population(seed=seed, as_of=day, citizens=people, certificates=certificates)


def generate_citizens(seed: int, citizens: int, *, as_of: dt.date | None = None) -> list[Citizen]:
    return generate_population(seed, citizens, as_of=as_of).citizens


# --- demo picks --------------------------------------------------------------------------------------------------


def _all_usable(citizen: Citizen, today: dt.date) -> bool:
    return bool(citizen.certificates) and all(
        c.status == "01" and (c.valid_until is None or c.valid_until >= today) for c in citizen.certificates
    )


def demo_citizens(citizens: Sequence[Citizen], k: int = 5, *, today: dt.date | None = None) -> list[Citizen]:
    """``k`` adults registered here whose certificates are all valid today, chosen deterministically.

    The first pick holds a 残疾人证 and a 低保 certificate, the second a 结婚证, a 社会保障卡 and a 户口簿 entry
    (when the population has such people); each further pick adds the most certificate types not yet shown, then
    the most departments, preferring households not yet picked.
    """
    day = today or today_in_shanghai()
    usable = [
        c for c in citizens if c.household_number and (day - c.birth_date).days >= 18 * 366 and _all_usable(c, day)
    ]
    # most departments first, then most certificate types; the ID number breaks ties (stable across runs)
    usable.sort(key=lambda c: (-len(c.departments), -len(c.certificate_types), c.id_number))
    wanted = (
        {"disability_certificate", "subsistence_allowance_certificate"},
        {"marriage_certificate", "social_security_card", "household_register"},
    )
    picked: list[Citizen] = []
    ids: set[str] = set()
    households: set[str] = set()
    shown: set[str] = set()

    def take(citizen: Citizen) -> None:
        picked.append(citizen)
        ids.add(citizen.id_number)
        households.add(citizen.household_number)
        shown.update(citizen.certificate_types)

    for types in wanted:
        match = next(
            (c for c in usable if types <= set(c.certificate_types) and c.household_number not in households), None
        )
        if match is not None and len(picked) < k:
            take(match)
    while len(picked) < k:
        left = [c for c in usable if c.id_number not in ids]
        if not left:
            break
        fresh = [c for c in left if c.household_number not in households] or left
        take(max(fresh, key=lambda c: (len(set(c.certificate_types) - shown), len(c.departments))))
    return picked
