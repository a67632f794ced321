"""Log formatters: one JSON object per line in production, readable lines locally.

`JsonFormatter` turns a record into a single line of JSON with `time` (ISO 8601, UTC, with
milliseconds), `level`, `logger`, `message`, every field passed with `extra={...}` (for
example `event`, `doc`, `user`, `session`, `code`), and `exc`/`stack` when there is a
traceback. A log shipper can then index the fields without parsing the message.

`PlainFormatter` prints the same information as `time level logger message key=value ...`.

`logging_config()` builds the LOGGING dict for settings; `TANDEM_LOG_FORMAT` (`json` or
`plain`) picks the formatter, defaulting to `json` in production and `plain` elsewhere.
"""

import json
import logging
from datetime import UTC, datetime

from django.core.exceptions import ImproperlyConfigured

FORMATS = ("json", "plain")

# The attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def extra_fields(record):
    """The fields a log call added with `extra={...}`, in the order they were set."""
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD}


def iso_time(record):
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside values are escaped)."""

    def format(self, record):
        entry = {
            "time": iso_time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            # An extra field never hides one of ours; it keeps its value under a new name.
            entry[f"extra_{key}" if key in entry else key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: an odd value (a UUID, a model instance) must not lose the whole line.
        return json.dumps(entry, default=str, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """`time level logger message key=value ...`, then the traceback if any."""

    def format(self, record):
        line = f"{iso_time(record)} {record.levelname} {record.name} {record.getMessage()}"
        fields = extra_fields(record)
        if fields:
            line += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def log_format(value, production):
    """The format named by TANDEM_LOG_FORMAT, or the default for the mode; fails if unknown."""
    chosen = (value or "").strip().lower() or ("json" if production else "plain")
    if chosen not in FORMATS:
        raise ImproperlyConfigured(
            f"TANDEM_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {value!r}"
        )
    return chosen


def logging_config(log_format, tandem_level="INFO"):
    """The LOGGING setting: everything through one stderr handler in the chosen format.

    The root logger gets the handler too, replacing the plain one daphne's command line
    installs before Django starts, so daphne's own messages (and anything else that
    propagates) come out in the same format. `tandem` loggers log at `tandem_level`;
    `django` (request errors, disallowed hosts) at INFO; other libraries at WARNING.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": "editor.logs.JsonFormatter"},
            "plain": {"()": "editor.logs.PlainFormatter"},
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": log_format}},
        "root": {"handlers": ["console"], "level": "WARNING"},
        "loggers": {
            "tandem": {"handlers": ["console"], "level": tandem_level, "propagate": False},
            "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
            # "Starting server", "Listening on", and errors such as failed handshakes.
            "daphne": {"level": "INFO"},
        },
    }
