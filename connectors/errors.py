"""Every way a department call can fail, as one exception tree (after httpx's)::

    ConnectorError                  anything a connector raises; carries department, endpoint, request_id
    ├── RetriableError              worth trying again later: the retry policy retries these, the breaker counts them
    │   ├── Timeout                 connect, read or total timeout, or the retry deadline passed
    │   ├── ConnectionFailed        refused, reset, DNS, TLS handshake failure
    │   ├── ServerError             HTTP 5xx (``status``)
    │   ├── RateLimited             HTTP 429 (``retry_after`` seconds, when the department said so)
    │   └── DepartmentBusy          a business error in a 2xx answer that the department file declares retriable
    ├── FatalError                  trying again will not help; never retried, not counted by the breaker
    │   ├── AuthenticationFailed    HTTP 401/403, or the token endpoint refused our credentials
    │   ├── BadRequest              any other HTTP 4xx
    │   ├── MalformedResponse       the body is not what the spec says (bad JSON/XML, missing fields, DTD)
    │   ├── ConfigurationError      the department file or its files (keys, certificates) are unusable
    │   ├── CircuitOpen             the breaker is open: failed fast, the network was not touched
    │   └── BusinessError           a business error in a 2xx answer declared (or defaulting to) fatal
    ├── RejectedResponse            a business error declared ``rejected``: the department refuses these records
    │                               (a holder lookup finds nothing; a sync records the page as rejected, goes on)
    └── RejectedCertificate         a certificate arrived but failed verification; ``reason`` says why

``endpoint`` is ``"GET /api/v2/licenses"`` (method and path, never the query: it may hold an ID number).
``request_id`` is generated per request and sent as ``X-Request-Id``, so one failure can be found in both
systems' logs. ``str(error)`` never contains personal data.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every connector failure."""

    #: Short, stable name of the failure kind (used in sync reports and metrics).
    kind: str = "connector_error"

    def __init__(self, message: str, *, department: str = "", endpoint: str = "", request_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.department = department
        self.endpoint = endpoint
        self.request_id = request_id

    def __str__(self) -> str:
        where = " ".join(part for part in (self.department, self.endpoint) if part)
        context = f"[{where}] " if where else ""
        suffix = f" (request {self.request_id})" if self.request_id else ""
        return f"{context}{self.kind}: {self.message}{suffix}"

    def __reduce__(self) -> tuple[object, ...]:  # keep context when pickled (e.g. across processes)
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[ConnectorError], message: str, state: dict[str, object]) -> ConnectorError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class RetriableError(ConnectorError):
    kind = "retriable"


class Timeout(RetriableError):
    kind = "timeout"


class ConnectionFailed(RetriableError):
    kind = "connection_failed"


class ServerError(RetriableError):
    kind = "server_error"

    def __init__(self, message: str, *, status: int, **context: str) -> None:
        super().__init__(message, **context)
        self.status = status


class RateLimited(RetriableError):
    kind = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, **context: str) -> None:
        super().__init__(message, **context)
        self.retry_after = retry_after


class DepartmentBusy(RetriableError):
    """A declared-retriable result code in a 2xx answer (``code``: the department's result code)."""

    kind = "department_busy"

    def __init__(self, message: str, *, code: str = "", **context: str) -> None:
        super().__init__(message, **context)
        self.code = code


class FatalError(ConnectorError):
    kind = "fatal"


class AuthenticationFailed(FatalError):
    kind = "authentication_failed"

    def __init__(self, message: str, *, status: int | None = None, **context: str) -> None:
        super().__init__(message, **context)
        self.status = status


class BadRequest(FatalError):
    kind = "bad_request"

    def __init__(self, message: str, *, status: int, **context: str) -> None:
        super().__init__(message, **context)
        self.status = status


class MalformedResponse(FatalError):
    kind = "malformed_response"


class ConfigurationError(FatalError):
    kind = "configuration_error"


class CircuitOpen(FatalError):
    kind = "circuit_open"

    def __init__(self, message: str, *, retry_in: float = 0.0, **context: str) -> None:
        super().__init__(message, **context)
        self.retry_in = retry_in


class BusinessError(FatalError):
    """A fatal (declared, or not declared at all) result code in a 2xx answer."""

    kind = "business_error"

    def __init__(self, message: str, *, code: str = "", **context: str) -> None:
        super().__init__(message, **context)
        self.code = code


class RejectedResponse(ConnectorError):
    """A result code declared ``rejected``: the department will not serve these records; others still come."""

    kind = "rejected_response"

    def __init__(self, message: str, *, code: str = "", **context: str) -> None:
        super().__init__(message, **context)
        self.code = code


class RejectedCertificate(ConnectorError):
    """A certificate failed verification. ``status`` is the `Verification` status, ``reason`` its words."""

    kind = "rejected_certificate"

    def __init__(self, reason: str, *, status: str = "", identifier: str = "", **context: str) -> None:
        super().__init__(reason, **context)
        self.reason = reason
        self.status = status
        self.identifier = identifier


__all__ = [
    "AuthenticationFailed",
    "BadRequest",
    "BusinessError",
    "CircuitOpen",
    "ConfigurationError",
    "ConnectionFailed",
    "ConnectorError",
    "DepartmentBusy",
    "FatalError",
    "MalformedResponse",
    "RateLimited",
    "RejectedCertificate",
    "RejectedResponse",
    "RetriableError",
    "ServerError",
    "Timeout",
]
