"""Log configuration: today's text lines, or one JSON object per line (``logging.format: "json"``).

Every record logged while a request is handled carries that request's id (a context variable set by the
request-id middleware), so a JSON log can be filtered by request. The access log adds its fields (route,
status, timings) as record attributes; the text format keeps them in the message, as before.
"""

from __future__ import annotations

import contextvars
import copy
import logging
import re
import sys
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

from stt.settings import LoggingSettings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
MAX_VALUE = 200  # characters of one client-controlled value in a log line
MAX_MESSAGE = 4000  # characters of one log message, whatever it holds
# C0 controls (CR, LF, ESC...), DEL, C1 controls (0x9b is a one-byte CSI), line/paragraph separators and the
# bidirectional overrides that make a terminal show text in another order than it was written.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(value: Any, limit: int = MAX_VALUE) -> str:
    """A client-controlled value for a log line: control characters escaped (``\\x0a``), at most ``limit``
    characters of it kept (the rest counted). Bytes are shown as Python shows them."""
    text = value if isinstance(value, str) else repr(value) if isinstance(value, (bytes, bytearray)) else str(value)
    cut = len(text) - limit
    text = _UNSAFE.sub(_escape, text[:limit] if cut > 0 else text)
    return f"{text}...(+{cut} chars)" if cut > 0 else text


class SafeTextFormatter(logging.Formatter):
    """Text lines that a logged value cannot split or forge (see the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        record = copy.copy(record)
        record.msg, record.args = safe(record.getMessage(), MAX_MESSAGE), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _indented(record.exc_text)
        if record.stack_info:
            record.stack_info = _indented(record.stack_info)
        return super().format(record)


def _indented(text: str) -> str:
    """A traceback: its lines escaped and indented (an exception's message may quote the client)."""
    return "\n".join("  " + safe(line, MAX_MESSAGE) for line in text.splitlines())


class SafeJsonFormatter(JsonFormatter):
    def process_log_record(self, log_record: dict[str, Any]) -> dict[str, Any]:
        for key, value in log_record.items():
            if isinstance(value, str) and len(value) > MAX_MESSAGE:
                log_record[key] = safe(value, MAX_MESSAGE)
        return super().process_log_record(log_record)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


def json_formatter() -> logging.Formatter:
    return SafeJsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def make_handler(settings: LoggingSettings, stream: TextIO | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter() if settings.format == "json" else SafeTextFormatter(TEXT_FORMAT))
    handler.addFilter(_RequestIdFilter())
    return handler


def configure(settings: LoggingSettings) -> None:
    """Replace the root logger's handlers with one that writes ``settings.format`` to stderr."""
    handler = make_handler(settings)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
