"""Log lines: one JSON object per record in production, readable lines locally."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from editor.logs import JsonFormatter, PlainFormatter, log_format, logging_config

ROOT = Path(__file__).resolve().parents[2]


def make_record(message="connect doc=%s", args=(7,), extra=None, exc_info=None):
    logger = logging.getLogger("tandem.socket")
    return logger.makeRecord(
        "tandem.socket", logging.INFO, __file__, 10, message, args, exc_info, extra=extra
    )


def test_json_line_has_time_level_logger_message_and_extra_fields():
    record = make_record(extra={"event": "connect", "doc": 7, "user": 3, "session": "s-1"})
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "tandem.socket"
    assert entry["message"] == "connect doc=7"
    assert entry["event"] == "connect"
    assert entry["doc"] == 7
    assert entry["user"] == 3
    assert entry["session"] == "s-1"
    # ISO 8601 in UTC with milliseconds: 2024-05-01T12:00:00.123Z
    assert entry["time"].endswith("Z")
    assert len(entry["time"]) == len("2024-05-01T12:00:00.123Z")
    assert set(entry) == {"time", "level", "logger", "message", "event", "doc", "user", "session"}


def test_json_line_carries_the_traceback_as_text():
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        record = make_record("commit loop error", (), extra={"doc": 1}, exc_info=sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert "Traceback" in entry["exc"]
    assert "RuntimeError: boom\nsecond line" in entry["exc"]
    assert entry["doc"] == 1


def test_json_line_survives_values_json_cannot_encode():
    record = make_record(extra={"code": 4408, "peer": object(), "ids": {1, 2}})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["code"] == 4408
    assert entry["peer"].startswith("<object object")
    assert entry["ids"] == "{1, 2}"


def test_an_extra_field_never_replaces_a_standard_one():
    record = make_record(extra={"time": "later", "level": "loud"})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "INFO"
    assert entry["extra_time"] == "later"
    assert entry["extra_level"] == "loud"


def test_plain_line_appends_extra_fields():
    record = make_record("disconnect", (), extra={"event": "disconnect", "code": 1006})
    line = PlainFormatter().format(record)
    assert line.endswith(" INFO tandem.socket disconnect event=disconnect code=1006")


def test_format_defaults_to_json_in_production_and_plain_locally():
    assert log_format(None, production=True) == "json"
    assert log_format("", production=False) == "plain"
    assert log_format("PLAIN", production=True) == "plain"
    assert log_format(" json ", production=False) == "json"
    with pytest.raises(ImproperlyConfigured, match="TANDEM_LOG_FORMAT"):
        log_format("xml", production=True)


def test_config_sends_tandem_django_and_daphne_through_one_formatter():
    config = logging_config("json", tandem_level="DEBUG")
    assert config["handlers"]["console"]["formatter"] == "json"
    assert config["loggers"]["tandem"]["level"] == "DEBUG"
    assert config["loggers"]["django"]["handlers"] == ["console"]
    assert config["root"]["handlers"] == ["console"]


def run_settings(code, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}
    clean.update(env, DJANGO_SETTINGS_MODULE="editor.settings")
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True
    )


LOG_SOME = """
import logging, django
django.setup()
logging.getLogger("tandem.socket").info(
    "connect doc=%s", 5, extra={"event": "connect", "doc": 5, "user": 2, "session": "abc"}
)
logging.getLogger("django.request").error("Internal Server Error: /x")
logging.getLogger("daphne.server").info("Listening on TCP address 127.0.0.1:8001")
"""


def test_production_logs_json_lines_from_tandem_django_and_daphne():
    result = run_settings(
        LOG_SOME, TANDEM_PRODUCTION="1", SECRET_KEY="x" * 50, ALLOWED_HOSTS="docs.example.com"
    )
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert [e["logger"] for e in entries] == ["tandem.socket", "django.request", "daphne.server"]
    assert entries[0]["event"] == "connect"
    assert entries[0]["session"] == "abc"
    assert entries[1]["level"] == "ERROR"


def test_local_logs_are_plain_unless_json_is_asked_for():
    plain = run_settings(LOG_SOME)
    assert plain.returncode == 0, plain.stderr
    first = plain.stderr.splitlines()[0]
    assert " INFO tandem.socket connect doc=5 event=connect doc=5 user=2 session=abc" in first
    asked = run_settings(LOG_SOME, TANDEM_LOG_FORMAT="json")
    assert json.loads(asked.stderr.splitlines()[0])["event"] == "connect"
