"""Errors of the Realtime face: before the upgrade, OpenAI's HTTP error shape (the OpenAI face's renderer);
after it, an ``error`` server event ``{type, code, message, param, event_id}``, and the session goes on."""

from __future__ import annotations

from stt.http.faces.openai.errors import openai_error as http_error

__all__ = ["EventError", "http_error"]


class EventError(Exception):
    """A client event that cannot be applied: answered with an ``error`` event, the session stays open."""

    def __init__(self, code: str, message: str, param: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.code, self.message, self.param, self.kind = code, message, param, kind
