"""Structured logs: one JSON object per line, each carrying the request id of the request it belongs to.

Every line has ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the ``request_id`` when the record
was made while a request was served, any ``extra`` fields the caller passed, and ``exception`` (the traceback as
one string) when there is one. Personal data never reaches a line: the records are masked when they are made
(`gateway.privacy.install_log_masking`), and the access log (`gateway.observability.requests`) names the route
template, never the path or query (which carry tracking numbers and query codes).

`logging_config()` is what `create_app` hands to Litestar; `onewindow serve` runs uvicorn without its own logging
set-up, so uvicorn's warnings and errors come out through the same JSON handler.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import traceback
from typing import Any

import msgspec
from litestar.logging.config import LoggingConfig

#: The id of the request being served in this task (``""`` outside requests).
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("onewindow_request_id", default="")

#: LogRecord attributes that are not ``extra`` fields.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}
_FLAG = "_onewindow_request_id"
_encoder = msgspec.json.Encoder(decimal_format="number")


def _default(value: Any) -> Any:
    return str(value)


_fallback_encoder = msgspec.json.Encoder(enc_hook=_default)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "")
        if request_id:
            line["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        try:
            return _encoder.encode(line).decode()
        except (TypeError, msgspec.EncodeError):
            return _fallback_encoder.encode(line).decode()


def install_request_ids() -> None:
    """Stamp every log record of this process with the current request id; calling it again changes nothing."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, _FLAG, False):
        return

    def stamped(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.request_id = REQUEST_ID.get()
        return record

    stamped.__dict__.update(vars(factory))  # keep the flags of the factories it wraps (log masking's)
    setattr(stamped, _FLAG, True)
    logging.setLogRecordFactory(stamped)


def logging_config() -> LoggingConfig:
    """JSON lines on standard error for every logger, through Litestar's queue (the event loop never waits on
    the write)."""
    return LoggingConfig(
        formatters={"standard": {"()": JsonFormatter}},
        loggers={
            # Migrations log every step at INFO; an operator wants to hear from them only when something is wrong.
            "alembic": {"level": "WARNING", "handlers": ["queue_listener"], "propagate": False},
            "uvicorn": {"level": "WARNING", "handlers": ["queue_listener"], "propagate": False},
            # uvicorn's access log would carry the path and query (tracking numbers, query codes): never.
            "uvicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
    )


__all__ = ["REQUEST_ID", "JsonFormatter", "install_request_ids", "logging_config"]
