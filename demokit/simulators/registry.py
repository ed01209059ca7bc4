"""Who the simulated department systems are and which certificate types each one issues.

A department system knows its own identity, so the simulators carry these few values themselves (the same codes,
names and USCCs as the district's registry) instead of reading the gateway's configuration.
"""

from __future__ import annotations

from typing import NamedTuple


class CertificateTypeInfo(NamedTuple):
    key: str  # our registry key
    name: str  # 证照名称
    type_code: str  # 证照类型代码: defining authority's USCC + 3 digits
    department: str  # issuing department code


class DepartmentInfo(NamedTuple):
    code: str
    name: str
    uscc: str
    style: str  # one line for the `onewindow simulate` table
    types: tuple[str, ...]  # certificate type keys this department issues


CERTIFICATE_TYPES: dict[str, CertificateTypeInfo] = {
    t.key: t
    for t in (
        CertificateTypeInfo("resident_id_card", "居民身份证", "1110000034147425UL001", "public_security"),
        CertificateTypeInfo("household_register", "居民户口簿", "1110000034147425UL002", "public_security"),
        CertificateTypeInfo("residence_permit", "居住证", "1110000034147425UL003", "public_security"),
        CertificateTypeInfo("marriage_certificate", "结婚证", "11100000942518256Y001", "civil_affairs"),
        CertificateTypeInfo("divorce_certificate", "离婚证", "11100000942518256Y002", "civil_affairs"),
        CertificateTypeInfo(
            "subsistence_allowance_certificate", "最低生活保障证", "11100000942518256Y003", "civil_affairs"
        ),
        CertificateTypeInfo(
            "extreme_poverty_certificate", "特困人员救助供养证", "11100000942518256Y004", "civil_affairs"
        ),
        CertificateTypeInfo("social_security_card", "社会保障卡", "1110000056837233GB001", "human_resources"),
        CertificateTypeInfo(
            "disability_certificate", "中华人民共和国残疾人证", "11100000603527777W001", "disabled_persons"
        ),
        CertificateTypeInfo("birth_medical_certificate", "出生医学证明", "1110000009874357D9001", "health"),
        CertificateTypeInfo("only_child_parents_certificate", "独生子女父母光荣证", "1110000009874357D9002", "health"),
        CertificateTypeInfo(
            "veteran_preferential_card", "中华人民共和国退役军人优待证", "1110000048348815WN001", "veterans"
        ),
        CertificateTypeInfo("real_estate_certificate", "不动产权证书", "1110000078603166X8001", "natural_resources"),
    )
}

#: In port order: the departments listen on base port + 1 … + 7 in this order (docs/simulators.md).
DEPARTMENTS: dict[str, DepartmentInfo] = {
    d.code: d
    for d in (
        DepartmentInfo(
            "public_security",
            "湘潭市公安局雨湖分局",
            "1143030225095009BR",
            "JSON, API key, cursor",
            ("resident_id_card", "household_register", "residence_permit"),
        ),
        DepartmentInfo(
            "civil_affairs",
            "湘潭市雨湖区民政局",
            "1143030256889651QK",
            "JSON, HMAC-signed requests, offset/limit",
            (
                "marriage_certificate",
                "divorce_certificate",
                "subsistence_allowance_certificate",
                "extreme_poverty_certificate",
            ),
        ),
        DepartmentInfo(
            "human_resources",
            "湘潭市雨湖区人力资源和社会保障局",
            "11430302161094428H",
            "JSON, OAuth2 client credentials, page number",
            ("social_security_card",),
        ),
        DepartmentInfo(
            "disabled_persons",
            "湘潭市雨湖区残疾人联合会",
            "13430302294112435D",
            "legacy XML, API key, page number",
            ("disability_certificate",),
        ),
        DepartmentInfo(
            "health",
            "湘潭市雨湖区卫生健康局",
            "1143030272284900B6",
            "JSON over mutual TLS, start/count",
            ("birth_medical_certificate", "only_child_parents_certificate"),
        ),
        DepartmentInfo(
            "veterans",
            "湘潭市雨湖区退役军人事务局",
            "1143030285134115JB",
            "plain JSON, skip/take",
            ("veteran_preferential_card",),
        ),
        DepartmentInfo(
            "natural_resources",
            "湘潭市自然资源和规划局雨湖分局",
            "1143030262199432C0",
            "JSON envelope in HTTP 200 (business codes), page number with a record total, code tables",
            ("real_estate_certificate",),
        ),
    )
}

DEPARTMENT_CODES: tuple[str, ...] = tuple(DEPARTMENTS)
