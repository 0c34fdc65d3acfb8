"""Client text messages on a live stream (KeepAlive, Finalize, CloseStream), read safely.

Every text message is client-controlled: it is parsed only when small (a control message is under 50 bytes;
a 4 MiB JSON frame parsed on the event loop stalled every other request), and whatever of it reaches the log is
a short prefix with control characters escaped, at a bounded rate per stream (one stream sending 4 MB ``type``
values wrote 1.44 GB of log in 10 s).
"""

from __future__ import annotations

import dataclasses
import json
import time

MAX_CONTROL_CHARS = 16 * 1024  # larger text messages are not parsed (ignored, like an unknown type)
PREFIX_CHARS = 40  # of a client's value, in a log line


@dataclasses.dataclass(frozen=True)
class Control:
    kind: str | None  # the "type" of a JSON object message, when it is a string
    note: str  # what the message was, safe to log: short and escaped
    # Finalize's optional "channel" (Deepgram: only that channel is finalized): None when absent; -1 when it is
    # there but not a channel index (an integer from 0).
    channel: int | None = None


def read_control(text: str) -> Control:
    if len(text) > MAX_CONTROL_CHARS:
        return Control(None, f"a text message of {len(text):,} characters (over {MAX_CONTROL_CHARS:,}: not parsed)")
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: deeply nested JSON
        return Control(None, f"a text message that is not JSON: {safe_prefix(text)}")
    if not isinstance(message, dict):
        return Control(None, f"a JSON {type(message).__name__}, not an object")
    kind = message.get("type")
    if not isinstance(kind, str):
        return Control(None, f"a JSON object whose type is {type(kind).__name__}")
    return Control(kind, f"type {safe_prefix(kind)}", _channel(message))


def _channel(message: dict[str, object]) -> int | None:
    if "channel" not in message:
        return None
    channel = message["channel"]
    return channel if isinstance(channel, int) and not isinstance(channel, bool) and channel >= 0 else -1


def safe_prefix(value: str, chars: int = PREFIX_CHARS) -> str:
    """The first ``chars`` characters, quoted, with CR, LF, ESC, other control and non-ASCII characters escaped
    (a log line cannot be forged or a terminal driven by them), and the full length when cut."""
    shown = ascii(value[:chars])
    return shown if len(value) <= chars else f"{shown}... ({len(value):,} characters)"


class LogBudget:
    """At most ``burst`` lines at once, then one per ``interval_s``; a line says how many were left out."""

    def __init__(self, burst: int = 5, interval_s: float = 10.0) -> None:
        self._burst, self._interval = burst, interval_s
        self._tokens = float(burst)
        self._last = time.monotonic()
        self.suppressed = 0

    def allow(self) -> bool:
        now = time.monotonic()
        self._tokens = min(float(self._burst), self._tokens + (now - self._last) / self._interval)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> int:
        count, self.suppressed = self.suppressed, 0
        return count
