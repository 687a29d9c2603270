"""The JSON log formatter, the request id it reads, and the options the server reads."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tabops.logs import REQUEST_ID, JsonFormatter, LogOptions, logging_config


def record(message: str = "scored %d rows", *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("tabops.test", logging.WARNING, __file__, 7, message, args, None)
    made.__dict__.update(extra)
    return made


def formatted(made: logging.LogRecord) -> dict[str, object]:
    line = JsonFormatter().format(made)
    assert "\n" not in line
    document: dict[str, object] = json.loads(line)
    return document


def test_a_line_holds_time_level_logger_message_and_extra_fields():
    document = formatted(
        record("scored %d rows", 3, model="churn", rows=3, at=Path("models/churn"))
    )

    assert document["level"] == "WARNING"
    assert document["logger"] == "tabops.test"
    assert document["message"] == "scored 3 rows"
    assert (document["model"], document["rows"]) == ("churn", 3)
    assert document["at"] == "models/churn"  # not a JSON value: its str()
    stamp = datetime.fromisoformat(str(document["time"]))
    assert stamp.utcoffset() == timedelta(0)
    assert "request_id" not in document
    assert "exception" not in document


def test_a_line_carries_the_running_request_id_unless_given_one():
    token = REQUEST_ID.set("req-7")
    try:
        assert formatted(record())["request_id"] == "req-7"
        assert formatted(record(request_id="other"))["request_id"] == "other"
    finally:
        REQUEST_ID.reset(token)
    assert "request_id" not in formatted(record())


def test_an_exception_is_a_field_of_the_line():
    try:
        raise ValueError("bad threshold")
    except ValueError:
        made = record("failed")
        made.exc_info = sys.exc_info()
    document = formatted(made)
    assert document["message"] == "failed"
    assert "Traceback" in str(document["exception"])
    assert "ValueError: bad threshold" in str(document["exception"])


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, LogOptions("text", False)),
        ({"TABOPS_LOG_FORMAT": "JSON"}, LogOptions("json", False)),
        ({"TABOPS_LOG_FORMAT": "json", "TABOPS_ACCESS_LOG": "true"}, LogOptions("json", True)),
        ({"TABOPS_LOG_FORMAT": " ", "TABOPS_ACCESS_LOG": "1"}, LogOptions("text", True)),
    ],
)
def test_log_options_come_from_the_environment(environ, expected):
    assert LogOptions.from_environment(environ) == expected


def test_an_unknown_log_format_is_refused_by_name():
    with pytest.raises(ValueError, match="TABOPS_LOG_FORMAT"):
        LogOptions.from_environment({"TABOPS_LOG_FORMAT": "xml"})


def test_only_json_logs_with_access_on_write_access_lines():
    assert LogOptions("json", True).is_json_access_logged
    assert not LogOptions("text", True).is_json_access_logged
    assert not LogOptions("json", False).is_json_access_logged


def test_the_logging_config_sends_every_logger_through_the_json_formatter():
    config = logging_config("warning")
    assert config["root"] == {"handlers": ["stderr"], "level": "WARNING"}
    assert config["handlers"]["stderr"]["formatter"] == "json"
    assert config["formatters"]["json"]["()"] == "tabops.logs.JsonFormatter"
    # The access lines show at any level; uvicorn's loggers lose their own text handlers.
    assert config["loggers"]["tabops.access"]["level"] == "INFO"
    assert all(logger["handlers"] == [] for logger in config["loggers"].values())
