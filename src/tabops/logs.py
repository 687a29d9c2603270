"""Structured logs: the JSON line formatter, the request id of the running request, log setup.

``REQUEST_ID`` is set by the server for the time of each request (the fast path and the
middleware in ``server/observability.py``); worker threads started from a request copy it, so
every line logged while answering carries the request's id. ``logging_config`` is the
``logging.config.dictConfig`` document ``tabops serve --log-format json`` hands to uvicorn,
which applies it in every worker process before the app is built.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

REQUEST_ID: ContextVar[str | None] = ContextVar("tabops_request_id", default=None)
"""The id of the request being answered, or None outside a request."""

ACCESS_LOGGER = "tabops.access"
"""The logger of the JSON access log: one line per request."""

LOG_FORMAT_ENV = "TABOPS_LOG_FORMAT"
ACCESS_LOG_ENV = "TABOPS_ACCESS_LOG"

LogFormat = Literal["text", "json"]

# What every LogRecord carries; anything else on a record came from ``extra=``.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "request_id",
}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line.

    Fields: ``time`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``, ``message``,
    ``pid`` (which server worker), ``request_id`` (inside a request, or given as ``extra``),
    every ``extra`` field, and ``exception`` / ``stack`` with the traceback text when there is
    one. A value JSON cannot hold is written as its ``str()``.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line (without the newline)."""
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id is not None:
            document["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in document:
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["exception"] = record.exc_text
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(document, default=str).decode()


@dataclass(frozen=True)
class LogOptions:
    """How a server process logs: the line format, and whether each request is logged."""

    format: LogFormat = "text"
    is_access_logged: bool = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> LogOptions:
        """The options ``TABOPS_LOG_FORMAT`` and ``TABOPS_ACCESS_LOG`` set.

        The serve command sets both for its workers.

        Raises:
            ValueError: ``TABOPS_LOG_FORMAT`` is neither ``text`` nor ``json``.
        """
        environ = os.environ if environ is None else environ
        found = environ.get(LOG_FORMAT_ENV, "text").strip().lower() or "text"
        if found not in ("text", "json"):
            raise ValueError(f"{LOG_FORMAT_ENV} must be 'text' or 'json', not {found!r}")
        access = environ.get(ACCESS_LOG_ENV, "").strip().lower() in ("1", "true", "yes", "on")
        return cls("json" if found == "json" else "text", access)

    @property
    def is_json_access_logged(self) -> bool:
        """Whether the app writes its own JSON access line per request."""
        return self.format == "json" and self.is_access_logged


def logging_config(level: str = "info") -> dict[str, Any]:
    """A ``dictConfig`` document sending every logger, uvicorn's too, as JSON lines to stderr.

    uvicorn's own access log is left to ``uvicorn.run(access_log=...)``; tabops writes its
    JSON access lines on ``tabops.access``.
    """
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": upper},
        "loggers": {
            # uvicorn's loggers send to the root handler rather than their own text ones.
            "uvicorn": {"handlers": [], "level": upper, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": upper, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": upper, "propagate": True},
            ACCESS_LOGGER: {"handlers": [], "level": "INFO", "propagate": True},
        },
    }
