"""``/api/v1/applications``: filing (一窗受理), the list of cases, material uploads, acceptance and the audited reads
of personal data. Thin: the logic is in `gateway.intake.services` and `gateway.intake.applicant` (personal data).
The list of cases (``GET``) is the lifecycle's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import FromPath, HeaderParameter, JSONBody, MultipartBody, QueryParameter

from gateway.evidence.schemas import CommitMaterial, VerifyMaterial
from gateway.identity.auth import require_roles
from gateway.identity.principal import Principal, Role
from gateway.intake.applicant import (
    NO_STORE,
    PURPOSE_MAX,
    PURPOSE_MIN,
    PURPOSE_PATTERN,
    READER_ROLES,
    ApplicantRecord,
    IssuedCertificateRecord,
    PersonalDataService,
)
from gateway.intake.deps import provide_intake, provide_material_evidence, provide_personal_data
from gateway.intake.schemas import Acceptance, ApplicationCreated, CreateApplication, MaterialLevel, MaterialUploaded
from gateway.intake.services import APPLICATIONS_PATH, IntakeService, application_location
from gateway.intake.verification import MaterialEvidenceService
from gateway.openapi import documented_string
from gateway.problems import problem_spec
from gateway.settings import Settings

#: Room for the multipart framing around the file itself (boundaries, part headers).
MULTIPART_OVERHEAD_BYTES = 64 * 1024


_ERRORS = {
    400: problem_spec("Malformed JSON"),
    403: problem_spec("Not a clerk at a street or community window"),
    422: problem_spec(
        "A field is invalid (`errors` names each), or required materials are missing (`materials.<key>`)"
    ),
}
_CASE_ERRORS = {
    404: problem_spec("No such application in your scope (the same answer as a missing one)"),
    409: problem_spec("The application's status does not allow this; `allowed` lists what it does allow"),
    412: problem_spec("If-Match does not match the application's current ETag"),
}

IfMatch = Annotated[
    str | None,
    HeaderParameter(name="If-Match", description="ETag from GET /applications/{id}; a stale one answers 412"),
]


@dataclass
class MaterialFile:
    """``multipart/form-data`` with one part named ``file``: a PDF, JPEG or PNG scan."""

    file: UploadFile


class IntakeController(Controller):
    path = APPLICATIONS_PATH
    tags = ("intake",)
    dependencies = {"intake": Provide(provide_intake, sync_to_thread=False)}  # noqa: RUF012 - Litestar layer API

    @post(
        "",
        operation_id="createApplication",
        summary="File an application (一窗受理)",
        description=(
            "A clerk files an application for a published item. Certificate-sourced materials are looked up in "
            "parallel within the time budget and come back `prefilled` (with the certificate), `missing` or "
            "`unavailable` (with the reason); applicant-sourced ones start `missing`. With `accept: true` the "
            "application is created and accepted in one transaction, or nothing is stored and 422 lists the "
            "missing materials. A community window filing a street item (代办) routes it to the parent street."
        ),
        guards=[require_roles(Role.CLERK)],
        status_code=201,
        responses=_ERRORS,
    )
    async def create(
        self,
        data: JSONBody[CreateApplication],
        principal: NamedDependency[Principal],
        intake: NamedDependency[IntakeService],
    ) -> Response[ApplicationCreated]:
        created = await intake.create(principal, data)
        return Response(created, status_code=201, headers={"Location": application_location(created.id)})

    @post(
        "/{application_id:str}/accept",
        operation_id="acceptApplication",
        summary="Accept a complete draft (受理)",
        description=(
            "Checks completeness against the catalog (required materials prefilled or provided), assigns the "
            "tracking number (430302 + date + daily sequence + check character) and the query code (shown only "
            "here, once), and sets the deadline: the item's promised working days after today."
        ),
        guards=[require_roles(Role.CLERK)],
        status_code=200,
        responses={**_ERRORS, **_CASE_ERRORS},
    )
    async def accept(
        self,
        application_id: FromPath[str],
        principal: NamedDependency[Principal],
        intake: NamedDependency[IntakeService],
        if_match: IfMatch = None,
    ) -> Acceptance:
        return await intake.accept(principal, application_id, if_match)


class MaterialUploadController(Controller):
    """Uploads live in their own controller so that its body limit follows ``Settings.upload_max_bytes``
    (`upload_controller`)."""

    path = "/api/v1/applications"
    tags = ("intake",)
    dependencies = {"intake": Provide(provide_intake, sync_to_thread=False)}  # noqa: RUF012 - Litestar layer API

    @post(
        "/{application_id:str}/materials/{key:str}",
        operation_id="uploadMaterial",
        summary="Upload a scan for one material",
        description=(
            "multipart/form-data with one part named `file`. The type is checked by content (PDF, JPEG, PNG "
            "signatures), never by name: anything else answers 415. Larger than the configured limit: 413. "
            "Allowed while the application is a draft or needs correction. The material becomes `provided`."
        ),
        guards=[require_roles(Role.CLERK)],
        status_code=200,
        responses={
            **_ERRORS,
            **_CASE_ERRORS,
            413: problem_spec("The file is larger than the upload limit"),
            415: problem_spec("Not a PDF, JPEG or PNG by content"),
        },
    )
    async def upload(
        self,
        application_id: FromPath[str],
        key: FromPath[str],
        data: MultipartBody[MaterialFile],
        principal: NamedDependency[Principal],
        intake: NamedDependency[IntakeService],
        if_match: IfMatch = None,
    ) -> MaterialUploaded:
        try:
            content = await data.file.read()
        finally:
            await data.file.close()
        return await intake.upload(principal, application_id, key, content, if_match)


class MaterialEvidenceController(Controller):
    """A material's trust level set by the window: verified against the original (C → B), or a commitment (D)."""

    path = APPLICATIONS_PATH
    tags = ("intake",)
    dependencies = {  # noqa: RUF012 - Litestar layer API
        "material_evidence": Provide(provide_material_evidence, sync_to_thread=False)
    }

    @post(
        "/{application_id:str}/materials/{key:str}/verification",
        operation_id="verifyMaterial",
        summary="Mark an uploaded scan verified against the original (level C → B)",
        description=(
            "The clerk compared the scan with the applicant's original (`original_seen: true`). The material "
            "becomes level B and the copy is kept, encrypted with its hash, in the applicant's evidence store, "
            "offered to later applications at any window until `valid_until` (default one year) or a consent "
            "withdrawal. Only an upload (C) can be verified (409 otherwise); a verified one answers as it stands. "
            "Audited (`material.verified`)."
        ),
        guards=[require_roles(Role.CLERK)],
        status_code=200,
        responses={**_ERRORS, **_CASE_ERRORS},
    )
    async def verify(
        self,
        application_id: FromPath[str],
        key: FromPath[str],
        data: JSONBody[VerifyMaterial],
        principal: NamedDependency[Principal],
        material_evidence: NamedDependency[MaterialEvidenceService],
        if_match: IfMatch = None,
    ) -> MaterialLevel:
        return await material_evidence.verify(principal, application_id, key, data, if_match)

    @post(
        "/{application_id:str}/materials/{key:str}/commitment",
        operation_id="commitMaterial",
        summary="Replace a material by the applicant's written commitment (告知承诺, level D)",
        description=(
            "Only for materials the catalog allows a commitment for (422 naming `materials.<key>` otherwise). The "
            "material carries the commitment text the applicant signed; acceptance opens its check (事后核查), "
            "due within the item's declared working days. Audited (`material.committed`)."
        ),
        guards=[require_roles(Role.CLERK)],
        status_code=200,
        responses={**_ERRORS, **_CASE_ERRORS},
    )
    async def commit(
        self,
        application_id: FromPath[str],
        key: FromPath[str],
        data: JSONBody[CommitMaterial],
        principal: NamedDependency[Principal],
        material_evidence: NamedDependency[MaterialEvidenceService],
        if_match: IfMatch = None,
    ) -> MaterialLevel:
        return await material_evidence.commit(principal, application_id, key, data, if_match)


Purpose = Annotated[
    str,
    QueryParameter(
        description=f"Why you read the data, 2..{PURPOSE_MAX} characters (e.g. 审核低保申请); goes into the audit log",
        # Required, but checked by the service, which answers 422 naming `purpose` (missing, too short or long):
        # absent reads as "" (a `str`, so that a purpose of "null" stays a string).
        required=True,
        schema_extra=documented_string(pattern=PURPOSE_PATTERN, min_length=PURPOSE_MIN, max_length=PURPOSE_MAX),
    ),
]


@dataclass
class ScanOperation(Operation):
    """The scan's 200 answer: whichever of the three accepted file types the material was handed in as."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            binary = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
            ok.content = {
                kind: OpenAPIMediaType(schema=binary) for kind in ("application/pdf", "image/jpeg", "image/png")
            }


class PersonalDataController(Controller):
    """The only routes that answer an applicant's personal data unmasked: each read is audited."""

    path = "/api/v1/applications"
    tags = ("personal data",)
    dependencies = {  # noqa: RUF012 - Litestar layer API
        "personal_data": Provide(provide_personal_data, sync_to_thread=False)
    }
    guards = [require_roles(*READER_ROLES)]  # noqa: RUF012 - Litestar layer API
    _responses = {  # noqa: RUF012 - shared by the two routes
        403: problem_spec("Not a clerk, officer or supervisor (admins and systems do not read personal data)"),
        404: problem_spec("No such application (or material, or prefilled certificate) in your scope"),
        422: problem_spec("`purpose` is missing or not 2..200 characters"),
    }

    @get(
        "/{application_id:str}/applicant",
        operation_id="readApplicant",
        summary="The applicant's identity and contact, unmasked (audited)",
        description=(
            "For the officer reviewing the case and the window printing the receipt: ID number, name, phone and "
            "address decrypted. `purpose` is required and goes into the audit record (`personal_data.read`, with "
            "the fields read, never their values), written in the same transaction as the read. Clerks of the "
            "filing or handling unit, officers of the item's department, supervisors; out of scope: 404. "
            "`Cache-Control: no-store`."
        ),
        responses=_responses,
    )
    async def applicant(
        self,
        application_id: FromPath[str],
        principal: NamedDependency[Principal],
        personal_data: NamedDependency[PersonalDataService],
        purpose: Purpose = "",
    ) -> Response[ApplicantRecord]:
        record = await personal_data.applicant(principal, application_id, purpose)
        return Response(record, headers=NO_STORE)

    @get(
        "/{application_id:str}/materials/{key:str}/certificate",
        operation_id="readMaterialCertificate",
        summary="The certificate that prefilled a material, as issued (audited)",
        description=(
            "The full e-certificate from the certificate store, decrypted: every signed field (holder name and "
            "code included), the issuer's signature, the verification status (`revoked` / `expired` once "
            "withdrawn) and whether it is usable today. Same scope and audit rule as the applicant read; the "
            "audit record's object is the certificate identifier, its detail names the application."
        ),
        responses=_responses,
    )
    async def certificate(
        self,
        application_id: FromPath[str],
        key: FromPath[str],
        principal: NamedDependency[Principal],
        personal_data: NamedDependency[PersonalDataService],
        purpose: Purpose = "",
    ) -> Response[IssuedCertificateRecord]:
        record = await personal_data.certificate(principal, application_id, key, purpose)
        return Response(record, headers=NO_STORE)

    @get(
        "/{application_id:str}/materials/{key:str}/scan",
        operation_id="readMaterialScan",
        operation_class=ScanOperation,
        summary="A material's scan, as handed in (audited)",
        description=(
            "The file uploaded for the material (PDF, JPEG or PNG, checked against the hash recorded with it), or, "
            "for a verified copy reused from the applicant's evidence store (level B), that copy. Same scope and "
            "audit rule as the applicant read (`personal_data.read`, subject `scan`, with the material and the "
            "file's hash, never its content). A material without a scan (prefilled, committed, missing) or whose "
            "file is no longer kept: 404. `Cache-Control: no-store`; served as an attachment."
        ),
        media_type="application/pdf",
        responses=_responses,
    )
    async def scan(
        self,
        application_id: FromPath[str],
        key: FromPath[str],
        principal: NamedDependency[Principal],
        personal_data: NamedDependency[PersonalDataService],
        purpose: Purpose = "",
    ) -> Response[bytes]:
        found = await personal_data.scan(principal, application_id, key, purpose)
        return Response(
            found.content,
            media_type=found.content_type,
            headers=NO_STORE
            | {
                "Content-Disposition": f'attachment; filename="{found.filename}"',
                "X-Content-Type-Options": "nosniff",
            },
        )


def upload_controller(settings: Settings) -> type[Controller]:
    """`MaterialUploadController` whose request body limit is the upload limit plus the multipart framing."""
    limit = settings.upload_max_bytes + MULTIPART_OVERHEAD_BYTES
    return type("MaterialUploadController", (MaterialUploadController,), {"request_max_body_size": limit})


__all__ = [
    "IntakeController",
    "MaterialEvidenceController",
    "MaterialUploadController",
    "PersonalDataController",
    "upload_controller",
]
