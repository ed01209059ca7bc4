"""The gateway against its own OpenAPI document, with schemathesis: every operation of ``/schema/openapi.json``,
every check, the examples, coverage, fuzzing and stateful phases — in process, on an isolated SQLite database,
once with a clerk's token and once with an officer's — and not one failure.

What "every check" holds the gateway to: no 5xx; only documented statuses, media types, headers and bodies
(problem+json included); schema-valid requests accepted and schema-invalid ones refused (so the document says
exactly what the gateway enforces: required, enums, patterns, ``additionalProperties: false``); 401 without or
with a wrong token; 405 with ``Allow`` for undocumented methods; created resources readable.

Two things are configured rather than found, both stated here:

- `DOMAIN_RULES`: the statuses a schema-valid request may also get where a rule of the domain decides that a JSON
  Schema cannot state (an item must exist in the catalog, an ID number's check character, a comment with a bad
  review…). Nothing else relaxes a check.
- `unique_idempotency_keys`: the client never reuses an ``Idempotency-Key`` for another request (the documented
  contract: a reused key with another body is a 422 by design, which a fuzzer drawing keys at random would
  otherwise report as valid data refused). Invalid keys reach the gateway unchanged.

So that operations on a case reach more than their 404, the database holds two real cases before the run (filed
through the API: one accepted, with its tracking number and query code, one draft), and the fuzzer draws
``application_id``, ``tracking_number`` and ``code`` from them half of the time (`Seeded`). The failure limiter
of the public tracking routes would otherwise answer 429 to the fuzzer after ten misses, so the settings allow a
million. The run is bounded and repeatable: a fixed number of examples per operation and of
stateful steps, a fixed seed, derandomized generation; it must complete (no time limit cut it short).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import schemathesis
from litestar import Litestar
from schemathesis.core.result import Ok
from schemathesis.engine import Status as Outcome
from schemathesis.engine import StopReason, events, from_schema
from schemathesis.python import asgi as in_process

from catalog.codes import citizen_id_check_char
from gateway.app import create_app
from gateway.identity import create_token
from gateway.settings import Settings
from tests.dbutil import asgi_client, isolated_settings, open_database
from tests.gateway.intake.fixtures import PDF, STREET

#: Examples per operation and phase, stateful steps per scenario, and the seed: the run's fixed budget.
MAX_EXAMPLES = 6
STATEFUL_STEPS = 8
SEED = 20260105

TOKENS: dict[str, dict[str, Any]] = {
    "clerk": {"role": "clerk", "unit": STREET},
    "officer": {"role": "officer", "department": "civil_affairs"},
}

_IF_MATCH = "an If-Match that names the case's current ETag"
#: Statuses a schema-valid request may get besides 2xx, 3xx, 401, 403, 404, 409 and 429 — each for a rule of the
#: domain that the schema cannot state.
DOMAIN_RULES: dict[str, dict[str, str]] = {
    "createApplication": {"422": "the item exists and is offered at this window; the ID number's check character "
                          "and birth date; the phone number; consent is true"},
    "acceptApplication": {"412": _IF_MATCH, "422": "every required material is prefilled or provided"},
    "transitionApplication": {"412": _IF_MATCH, "422": "a note or a result where the move requires one"},
    "uploadMaterial": {"412": _IF_MATCH, "413": "the configured size limit",
                       "415": "a PDF, JPEG or PNG by its content", "422": "a file that is not empty"},
    "evaluateService": {"422": "a comment with a level of 2 or less"},
    "listApplications": {"400": "a tracking number's date and check character"},
    "listCatalogItems": {"400": "a department code the catalog knows"},
    "verifyMaterial": {"412": _IF_MATCH, "422": "the clerk saw the original (original_seen is true); valid_until "
                       "neither past nor more than five years ahead"},
    "commitMaterial": {"412": _IF_MATCH, "422": "the applicant signed (agreed is true); the catalog allows a "
                       "commitment for the material"},
    "recordEvidenceCheck": {"422": "a note when the check failed"},
    "withdrawEvidenceConsent": {"422": "the ID number's check character and birth date"},
    "prefillRate": {"422": "start not after end, and a period of at most three years"},
    "pushDepartmentEvent": {"422": "the fields an event type needs and only those (missing, procedure, result, "
                            "note); entries of missing not empty"},
    **{
        operation: {"422": "a weekly report starts on a Monday, a monthly one on the first of a month"}
        for operation in ("weeklyReport", "monthlyReport", "reportVersions", "reportChart", "reportPage",
                          "generateReport")
    },
    "correctCaseGrid": {"422": "a grid code the catalog knows, and a reason"},
    "createGridConsultation": {"422": "an item the catalog knows; an ID number only with consent"},
    "completeGridTask": {"422": "an outcome the task's kind allows"},
    "readGridCasePhone": {"422": "a purpose of 2 to 200 characters"},
}  # fmt: skip
_ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429"]

#: 城市生活无着流浪乞讨人员救助 (civil affairs, a street item): its one required material comes from the applicant,
#: so a case of it can be accepted without the department systems.
RESCUE_ITEM = "0205009100"
CITIZEN_ID = "430302198001010013"[:17] + citizen_id_check_char("430302198001010013"[:17])

_VISIBLE_KEY = re.compile(rb"^[\x21-\x7e]{1,255}$")


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def unique_idempotency_keys(app: Litestar) -> ASGIApp:
    """``app`` behind a client that makes every valid ``Idempotency-Key`` unique (keeps it valid; see the module
    docstring). The lifespan and everything else pass through unchanged."""
    counter = itertools.count()
    inner: Any = app

    async def client(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = []
            for name, value in scope["headers"]:
                if name == b"idempotency-key" and _VISIBLE_KEY.match(value.strip()):
                    value = value.strip()[:200] + b"~%d" % next(counter)
                headers.append((name, value))
            scope = {**scope, "headers": headers}
        await inner(scope, receive, send)

    return client


@dataclass(frozen=True)
class Seeded:
    """The real cases the run starts with."""

    application_ids: tuple[str, ...]
    tracking_number: str
    query_code: str


def config(token: str, seeded: Seeded) -> schemathesis.Config:
    drawn = {"probability": 0.5}
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "dictionaries": {
                "cases": {"values": list(seeded.application_ids)},
                "numbers": {"values": [seeded.tracking_number]},
                "codes": {"values": [seeded.query_code]},
                "items": {"values": [RESCUE_ITEM]},
                "citizens": {"values": [CITIZEN_ID]},
                "names": {"values": ["测试人"]},
                "phones": {"values": ["13800138000"]},
            },
            "parameters": {
                "path.application_id": {"dictionary": "cases", **drawn},
                "path.tracking_number": {"dictionary": "numbers", **drawn},
                "query.code": {"dictionary": "codes", **drawn},
                "body.item_code": {"dictionary": "items", "probability": 0.8},
                "body.applicant.id_number": {"dictionary": "citizens", "probability": 0.8},
                "body.applicant.name": {"dictionary": "names", "probability": 0.8},
                "body.applicant.phone": {"dictionary": "phones", "probability": 0.8},
            },
            "workers": 1,
            "cache": {"enabled": False},
            "checks": {"enabled": True},
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
            "auth": {"openapi": {"bearer": {"bearer": token}}},
            "operations": [
                {
                    "include-operation-id": operation,
                    "checks": {"positive_data_acceptance": {"expected-statuses": [*_ACCEPTED, *sorted(statuses)]}},
                }
                for operation, statuses in DOMAIN_RULES.items()
            ],
        }
    )


@dataclass
class Run:
    """What one schemathesis run did."""

    operations: set[str] = field(default_factory=set)
    tested: set[str] = field(default_factory=set)
    cases: int = 0
    scenarios: int = 0
    #: Answers by operation and status class ("GET /api/v1/track/{tracking_number} 2xx": n).
    answers: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    stop: StopReason | None = None
    seconds: float = 0.0

    def summary(self, role: str) -> str:
        return (
            f"{role}: {len(self.tested)}/{len(self.operations)} operations, {self.scenarios} scenarios, "
            f"{self.cases} requests ({self.answered(2)} answered 2xx), {len(self.failures)} failures, "
            f"{self.seconds:.1f} s ({self.stop})"
        )

    def answered(self, status_class: int) -> int:
        return sum(n for key, n in self.answers.items() if key.endswith(f" {status_class}xx"))


def _failures(event: events.ScenarioFinished) -> Iterator[str]:
    for case_id, checks in event.recorder.checks.items():
        for check in checks:
            if check.status != Outcome.FAILURE or check.failure_info is None:
                continue
            interaction = event.recorder.interactions.get(case_id)
            status = interaction.response.status_code if interaction and interaction.response else None
            yield (
                f"[{event.phase.name}] {event.label} {check.name} → {status}: "
                f"{check.failure_info.failure.title}\n    {check.failure_info.code_sample}"
            )


def run_schemathesis(app: ASGIApp, token: str, seeded: Seeded) -> Run:
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app, config=config(token, seeded))
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    run = Run(operations={operation.label for operation in operations})
    started = time.monotonic()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            run.scenarios += 1
            run.cases += len(event.recorder.cases)
            if event.label is not None and event.status != Outcome.SKIP:
                run.tested.add(event.label)
            run.failures.extend(_failures(event))
            for case_id, interaction in event.recorder.interactions.items():
                node = event.recorder.cases.get(case_id)
                if interaction.response is None or node is None:
                    continue
                # By the operation the request was for (stateful scenarios call several), and only in its own
                # method (the probes of undocumented methods are answered 405, or 204 for OPTIONS).
                operation = node.value.operation
                if interaction.request.method.upper() == operation.method.upper():
                    run.answers[f"{operation.label} {interaction.response.status_code // 100}xx"] += 1
        elif isinstance(event, events.NonFatalError):
            run.failures.append(f"[error] {event.label}: {event.info}")
        elif isinstance(event, events.FatalError):
            run.failures.append(f"[fatal] {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            run.stop = event.stop_reason
    run.seconds = time.monotonic() - started
    return run


async def seed(settings: Settings, clerk: str) -> Seeded:
    """Two cases of the street window's `RESCUE_ITEM` filed through the API: one accepted, one left a draft."""
    body = {
        "item_code": RESCUE_ITEM,
        "applicant": {"id_number": CITIZEN_ID, "name": "测试人", "phone": "13800138000"},
        "consent": True,
    }
    auth = {"Authorization": f"Bearer {clerk}"}
    async with asgi_client(create_app(settings)) as client:
        ids = []
        for _ in range(2):
            created = await client.post("/api/v1/applications", json=body, headers=auth)
            assert created.status_code == 201, created.text
            ids.append(str(created.json()["id"]))
        upload = await client.post(
            f"/api/v1/applications/{ids[0]}/materials/help_registration",
            files={"file": ("form.pdf", PDF, "application/pdf")},
            headers=auth,
        )
        assert upload.status_code == 200, upload.text
        accepted = await client.post(f"/api/v1/applications/{ids[0]}/accept", headers=auth)
        assert accepted.status_code == 200, accepted.text
    acceptance = accepted.json()
    return Seeded(tuple(ids), str(acceptance["tracking_number"]), str(acceptance["query_code"]))


async def prepare(tmp_path: Path) -> tuple[Settings, dict[str, str], Seeded]:
    """Settings on an isolated, migrated SQLite database with one token per role in `TOKENS` and the seeded cases."""
    async with isolated_settings(f"sqlite:///{tmp_path / 'onewindow.sqlite3'}", tmp_path / "var") as base:
        settings = msgspec.structs.replace(base, tracking_failures_per_minute=1_000_000, lookup_budget_seconds=0.5)
    async with open_database(settings) as db:
        tokens = {role: (await create_token(db, **spec))[0] for role, spec in TOKENS.items()}
    return settings, tokens, await seed(settings, tokens["clerk"])


def test_the_gateway_conforms_to_its_openapi_document(tmp_path: Path) -> None:
    settings, tokens, seeded = asyncio.run(prepare(tmp_path))
    app = unique_idempotency_keys(create_app(settings))
    runs: dict[str, Run] = {}
    try:
        for role, token in tokens.items():
            runs[role] = run_schemathesis(app, token, seeded)
    finally:
        in_process.shutdown_lifespans()
    report = "\n".join(run.summary(role) for role, run in runs.items())
    report += "\n" + "\n".join(
        f"  {key}: {sum(run.answers[key] for run in runs.values())}"
        for key in sorted({key for run in runs.values() for key in run.answers})
        if key.endswith("2xx")
    )
    print(report)
    for role, run in runs.items():
        assert run.stop is StopReason.COMPLETED, report
        assert run.failures == [], f"{run.summary(role)}\n" + "\n".join(run.failures)
        assert len(run.operations) >= 19 and run.tested == run.operations, report
