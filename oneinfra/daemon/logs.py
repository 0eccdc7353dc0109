"""The daemon's log on stderr: readable text by default, or JSON, one event
a line (`--log-format json`), for journald, Loki and the like.

A line's fields beyond its message (the cluster, the hypervisor, ...) are
given with `extra=fields(...)` and shown by both: as `key=value` after a
text line, as keys of a JSON one. Every logger is configured, the daemon's
own lines (say) and the libraries' (asyncio's, grpclib's) alike.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import msgspec

FORMATS = ("text", "json")
FIELDS = ("cluster", "hypervisor", "component")  # the fields a line may carry
PREFIX = "oneinfra daemon: "
# Libraries that say every request at INFO (the probes of every cluster,
# several a second): their warnings only.
QUIET = ("httpx", "httpcore")

log = logging.getLogger("oneinfra.daemon")


def fields(**values: object) -> dict[str, object]:
    """`extra=` for a log call; fields that are None are left out."""
    unknown = set(values) - set(FIELDS)
    assert not unknown, f"no such log field: {unknown}"
    return {key: value for key, value in values.items() if value is not None}


def carried(record: logging.LogRecord) -> dict[str, str]:
    return {key: str(getattr(record, key)) for key in FIELDS if hasattr(record, key)}


class TextFormatter(logging.Formatter):
    """`oneinfra daemon: [level: ]message (key=value ...)`: the level only
    when it is news (warning, error), a traceback on the lines after."""

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno <= logging.INFO else f"{record.levelname.lower()}: "
        shown = " ".join(f"{key}={value}" for key, value in carried(record).items())
        line = f"{PREFIX}{level}{record.getMessage()}" + (f" ({shown})" if shown else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JSONFormatter(logging.Formatter):
    """{"time", "level", "logger", "message", the fields, "error"}: the
    time in UTC, RFC 3339 to the millisecond; a traceback under "error"."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, Any] = {
            "time": f"{seconds}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **carried(record),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry).decode()


def configure(log_format: str = "text", stream: TextIO | None = None) -> None:
    """Every log line to stderr (or `stream`), in that format, from INFO up."""
    if log_format not in FORMATS:
        raise ValueError(f"--log-format {log_format!r} is not one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for chatty in QUIET:
        logging.getLogger(chatty).setLevel(logging.WARNING)


def say(message: str, **values: object) -> None:
    """A line of the daemon's own: what it does, what stopped it."""
    log.info(message, extra=fields(**values))
