"""Logging set-up: one line per record, level from ``LOG_LEVEL``, secrets masked.

``LOG_FORMAT`` chooses the lines: ``text`` (for people) or ``json`` (one JSON object per
line, for a log collector). Every line written while a job runs carries the job's
``job_id``, ``task`` and ``attempt``; every line written while a request is served, and
every line of a job that request enqueued, carries its ``request_id``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .model import JobContext, job_or_none, request_id
from .redaction import SECRET_NAME, redact, redact_value

__all__ = ["SECRET_NAME", "ContextFilter", "configure_logging", "redact", "redact_value"]

#: The fields :class:`ContextFilter` adds to a record (None when not in a job or request).
CONTEXT_FIELDS = ("job_id", "task", "attempt", "request_id")
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFilter(logging.Filter):
    """Masks secrets (:func:`redact`) in what a handler writes: messages and tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


class ContextFilter(logging.Filter):
    """Adds the running job (``job_id``, ``task``, ``attempt``) and the request id to
    each record, from the job model's context variables (None when there is none)."""

    def __init__(
        self, job: Callable[[], JobContext | None], request: Callable[[], str | None]
    ) -> None:
        super().__init__()
        self._job, self._request = job, request

    def filter(self, record: logging.LogRecord) -> bool:
        job = self._job()
        record.job_id = job.job_id if job else None
        record.task = job.task or None if job else None
        record.attempt = job.attempt if job else None
        record.request_id = (job.request_id if job else None) or self._request()
        return True


def context_of(record: logging.LogRecord) -> dict[str, Any]:
    """The context fields a record carries (those set, in :data:`CONTEXT_FIELDS` order)."""
    fields = {name: getattr(record, name, None) for name in CONTEXT_FIELDS}
    return {name: value for name, value in fields.items() if value is not None}


class TextFormatter(logging.Formatter):
    """``time level logger: message``, then ``[job_id=... task=... attempt=...
    request_id=...]`` when the record has them."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = context_of(record)
        if not context:
            return text
        first, newline, rest = text.partition("\n")  # a traceback stays below
        fields = " ".join(f"{name}={value}" for name, value in context.items())
        return f"{first} [{fields}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``, the context fields when set, ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **context_of(record),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of ``LOG_FORMAT`` (``text`` or ``json``); ValueError otherwise."""
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return TextFormatter()
    raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")


def configure_logging(level: str, log_format: str = "text") -> None:
    """Log to stderr at ``level`` in ``log_format``, through every root handler (also one
    a server such as Celery set up): passwords masked, job and request fields added."""

    chosen = formatter(log_format)
    logging.basicConfig(level=level.upper())
    logging.captureWarnings(True)  # Python's warnings as log lines too (py.warnings)
    # uvicorn's own lines (start-up, access log) through the same handler and format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
    for handler in logging.getLogger().handlers:
        handler.setFormatter(chosen)
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter(job_or_none, request_id))
