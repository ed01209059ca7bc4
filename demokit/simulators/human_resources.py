"""湘潭市雨湖区人力资源和社会保障局 — JSON, OAuth2 client credentials, page number (docs/simulators.md §3).

Types: 社会保障卡. ``POST /oauth/token`` (RFC 6749 §4.4, client authenticated with HTTP Basic or form fields) issues
opaque bearer tokens that expire after ``expires_in`` seconds; API calls without a live token get 401 with a
``WWW-Authenticate`` challenge (RFC 6750).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web

from demokit.simulators.base import (
    DATA_ROUTE,
    ApiError,
    DepartmentSimulator,
    RecordLayout,
    datetime_param,
    int_param,
    json_response,
    page_count,
    page_size_param,
)

CLIENT_ID = "onewindow"
CLIENT_SECRET = "demo-human-resources-secret"  # noqa: S105 - published demo credential (docs/simulators.md)
TOKEN_TTL_SECONDS = 300
DEFAULT_SIZE = 100
_REALM = 'realm="hrss"'


CARD = RecordLayout(
    identifier="cert_id",
    number="card_no",
    type_code="type_code",
    name="title",
    holder_name="person_name",
    holder_code="person_id",
    holder_code_type="person_id_type",
    issuer_name="issuer",
    issuer_code="issuer_uscc",
    issue_date="issued_on",
    valid_from="valid_from",
    valid_until="valid_to",
    status="state",
    division_code="area_code",
    attributes="extra",
    updated_at="updated_at",
    signature="signature",
    signature_parts=("algorithm", "key_id", "value"),
)


class HumanResourcesSimulator(DepartmentSimulator):
    code = "human_resources"
    bulk_path = "/hrss/v1/cards"
    layout = CARD

    def __init__(self, *args: Any, token_ttl: int = TOKEN_TTL_SECONDS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if token_ttl < 1:
            raise ValueError("token_ttl must be at least 1 second")
        self.token_ttl = token_ttl
        self.clients = {CLIENT_ID: CLIENT_SECRET}
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self.tokens_issued = 0

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/oauth/token", self.token)
        app.router.add_get("/hrss/v1/cards", self.cards, name=f"{DATA_ROUTE}:cards")
        app.router.add_get("/hrss/v1/persons/{person_id}/cards", self.person_cards, name=f"{DATA_ROUTE}:person")
        app.router.add_post("/__sim__/expire-tokens", self.expire_tokens)

    def extra_stats(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "tokens_issued": self.tokens_issued,
            "tokens_active": sum(1 for expiry in self._tokens.values() if expiry > now),
        }

    # OAuth2 ----------------------------------------------------------------------------------------------------
    @staticmethod
    def _oauth_error(
        status: int, error: str, description: str, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        response = json_response({"error": error, "error_description": description}, status, headers=headers)
        response.headers["Cache-Control"] = "no-store"
        return response

    def _client_credentials(self, request: web.Request, form: Mapping[str, str]) -> tuple[str, str] | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic" and value:
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            client_id, sep, client_secret = decoded.partition(":")
            if not sep:
                return None
            # RFC 6749 §2.3.1: both parts are form-encoded before Basic encoding
            return unquote_plus(client_id), unquote_plus(client_secret)
        if form.get("client_id") and form.get("client_secret"):
            return form["client_id"], form["client_secret"]
        return None

    async def token(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        credentials = self._client_credentials(request, form)
        expected = self.clients.get(credentials[0]) if credentials else None
        if (
            credentials is None
            or expected is None
            or not hmac.compare_digest(credentials[1].encode(), expected.encode())
        ):
            return self._oauth_error(
                401, "invalid_client", "client authentication failed", {"WWW-Authenticate": f"Basic {_REALM}"}
            )
        grant_type = form.get("grant_type", "")
        if grant_type != "client_credentials":
            error = "invalid_request" if not grant_type else "unsupported_grant_type"
            return self._oauth_error(400, error, "grant_type must be client_credentials")
        now = time.monotonic()
        for token, expiry in list(self._tokens.items()):
            if expiry <= now:
                del self._tokens[token]
        token = secrets.token_urlsafe(32)
        self._tokens[token] = now + self.token_ttl
        self.tokens_issued += 1
        response = json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl, "scope": "cards:read"}
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    def authenticate(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "a bearer token is required", headers={"WWW-Authenticate": f"Bearer {_REALM}"})
        expiry = self._tokens.get(token.strip())
        if expiry is None or expiry <= time.monotonic():
            raise ApiError(
                401,
                "the access token is unknown or expired",
                headers={"WWW-Authenticate": f'Bearer {_REALM}, error="invalid_token"'},
            )

    def error_response(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
        if status == 401:  # RFC 6750 error body next to the challenge
            return self._oauth_error(401, "invalid_token", message, headers)
        return super().error_response(status, message, headers=headers)

    async def expire_tokens(self, request: web.Request) -> web.Response:
        expired = len(self._tokens)
        self._tokens.clear()
        return json_response({"expired": expired})

    # API -------------------------------------------------------------------------------------------------------
    async def cards(self, request: web.Request) -> web.Response:
        self.authenticate(request)
        page = int_param(request, "page", default=1, low=1)
        size = page_size_param(request, "size", default=DEFAULT_SIZE)
        cards, changed = self.changed_page(datetime_param(request, "since"), (page - 1) * size, size)
        return json_response(
            {"page": page, "size": size, "total_pages": page_count(changed, size), "items": self.records(cards)}
        )

    async def person_cards(self, request: web.Request) -> web.Response:
        self.authenticate(request)
        entries = self.holder_entries(request, "person_id", raw=request.match_info["person_id"])
        return json_response({"items": self.records(entries)})
