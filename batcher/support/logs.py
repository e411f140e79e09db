"""Events as log lines on stderr: today's text lines, or one JSON object per event.

The standard `logging` module carries them: `setup()` puts one handler on the `batcher` logger
with the formatter of the format asked for, and `emit(event)` logs an Event as a record whose
extra attributes hold its name and fields. `JsonFormatter` writes each record as one JSON object
(`time`, `level`, `event`, `message`, then the event's fields) with `json.dumps`, never by hand;
`TextFormatter` writes `batcher: <message>` as batcher always has (`batcher: error: ...` for
errors, `batcher: warning: ...` for the `warning` event), and once a run's id is known
`batcher[run <id>]: <message>`: every line of a run names it (a JSON object has it as `run_id`),
so that the lines of several nights in one log, or one mail, can be told apart. `quiet` keeps
the lines at `warning` and `error` only; with JSON, the summary event (`run.finished`,
`plan.finished`) goes to `out` (stdout) as the one object there, not to stderr. Both scrub
the token (any piece of it, see `batcher.support.secrets`) from everything they write, as a
last guard: nothing that reaches them should hold it in the first place. Neither writes a
control or bidirectional character raw (`batcher.support.printable`): a newline in a cell
cannot forge a line of the log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from batcher.domain.events import Event
from batcher.support.printable import escaped, json_escaped
from batcher.support.secrets import Scrubber

__all__ = [
    "FORMATS",
    "JsonFormatter",
    "TextFormatter",
    "emit",
    "logger",
    "name",
    "set_scrubber",
    "setup",
]

FORMATS = ("text", "json")
LOGGER = "batcher"

# The events that carry the whole summary: with JSON logs, the one object on stdout.
SUMMARY_EVENTS = ("run.finished", "plan.finished")
# The events that tell a run's id first (see `batcher.domain.events`).
_ID_EVENTS = ("run.started", "run.continued")

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def logger() -> logging.Logger:
    return logging.getLogger(LOGGER)


def emit(event: Event) -> None:
    """Log `event` on the `batcher` logger (see `setup`)."""
    logger().log(
        _LEVELS[event.level],
        "%s",
        event.message,
        extra={"event": event.name, "fields": dict(event.fields), "text": event.text},
    )


def _scrubbed(value: Any, scrubber: Scrubber) -> Any:
    if isinstance(value, str):
        return scrubber.scrub(value)
    if isinstance(value, dict):
        return {str(k): _scrubbed(v, scrubber) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v, scrubber) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return scrubber.scrub(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, event, message, then the event's fields."""

    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__()
        self.scrubber = scrubber

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", "message"),
        }
        run_id = getattr(record, "run_id", "")
        if run_id:
            data["run_id"] = run_id
        data["message"] = record.getMessage()
        for key, value in getattr(record, "fields", {}).items():
            if key not in data:
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json_escaped(
            json.dumps(_scrubbed(data, self.scrubber), ensure_ascii=False, default=str)
        )


class TextFormatter(logging.Formatter):
    """`batcher: <message>`, the lines batcher has always written; `batcher[run <id>]: ...` once
    the run's id is known."""

    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__()
        self.scrubber = scrubber

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.ERROR:
            prefix = "error: "
        elif getattr(record, "event", "") == "warning":
            prefix = "warning: "
        else:
            prefix = ""
        run_id = getattr(record, "run_id", "")
        shown = f"batcher[run {run_id}]" if run_id else "batcher"
        return escaped(self.scrubber.scrub(f"{shown}: {prefix}{record.getMessage()}"))


# The id of this process's run, once an event has told it (one run per process: the CLI's).
_run_id = ""


def name() -> str:
    """How this process's lines begin: `batcher`, or `batcher[run <id>]` once the run's id is
    known (for lines written outside logging: the signal handler's)."""
    return f"batcher[run {_run_id}]" if _run_id else "batcher"


class _RunId(logging.Filter):
    """Stamps every record with the run's id (`record.run_id`), once an event has told it."""

    def filter(self, record: logging.LogRecord) -> bool:
        global _run_id
        fields = getattr(record, "fields", {})
        if getattr(record, "event", "") in _ID_EVENTS and fields.get("run_id"):
            _run_id = str(fields["run_id"])
        record.run_id = _run_id
        return True


class _WriteHandler(logging.Handler):
    """Hands each formatted line to `write` (the CLI's, which copes with a closed pipe)."""

    def __init__(
        self,
        write: Callable[[str], None],
        *,
        text_only: bool,
        quiet: bool,
        out: Callable[[str], None] | None,
    ) -> None:
        super().__init__(logging.WARNING if quiet else logging.DEBUG)
        self._write = write
        self._text_only = text_only
        self._out = out

    def emit(self, record: logging.LogRecord) -> None:
        if self._text_only and not getattr(record, "text", True):
            return  # for machine logs only (a 429 pause, the summary already on stdout)
        write = self._write
        if getattr(record, "event", "") in SUMMARY_EVENTS and self._out is not None:
            write = self._out  # the summary: stdout's one JSON object
        try:
            write(self.format(record))
        except Exception:
            self.handleError(record)


def setup(
    log_format: str,
    write: Callable[[str], None],
    scrubber: Scrubber,
    *,
    quiet: bool = False,
    out: Callable[[str], None] | None = None,
) -> logging.Logger:
    """Send the `batcher` logger's records to `write`, formatted as `log_format` says: with
    `quiet`, only warnings and errors; with JSON, the summary event to `out` if given."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {log_format!r}")
    log = logger()
    for handler in list(log.handlers):
        log.removeHandler(handler)
    global _run_id
    _run_id = ""
    for old in list(log.filters):
        log.removeFilter(old)
    # On the logger, not the handler: a quiet handler never sees `run.started`, yet its lines
    # name the run too.
    log.addFilter(_RunId())
    json_format = log_format == "json"
    handler = _WriteHandler(
        write, text_only=not json_format, quiet=quiet, out=out if json_format else None
    )
    handler.setFormatter(JsonFormatter(scrubber) if json_format else TextFormatter(scrubber))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if json_format else logging.INFO)
    log.propagate = False
    return log


def set_scrubber(scrubber: Scrubber) -> None:
    """Scrub another token (once settings name the variable that holds it)."""
    for handler in logger().handlers:
        formatter = handler.formatter
        if isinstance(formatter, JsonFormatter | TextFormatter):
            formatter.scrubber = scrubber
