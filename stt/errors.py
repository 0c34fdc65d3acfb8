"""Domain errors: what went wrong, as a stable code and a message that is safe to show the client.

No HTTP here: the code -> status table and the middleware that answers in each face's error shape are in
``stt/http/errors.py``. ``retry_after_s`` says when a refused client may try again (the HTTP side sends it as
``Retry-After``).
"""

from __future__ import annotations


class ApiError(Exception):
    """A failure with a code from a fixed set and a message that is safe to show the client."""

    code = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after_s = retry_after_s


class BadRequest(ApiError):
    code = "bad_request"


class AudioError(BadRequest):
    code = "invalid_audio"


class TooLarge(ApiError):
    code = "too_large"


class Overloaded(ApiError):
    code = "overloaded"


class EngineError(ApiError):
    code = "engine_error"


class ModelNotFound(ApiError):
    code = "model_not_found"


class UnsupportedEncoding(ApiError):
    code = "unsupported_encoding"
