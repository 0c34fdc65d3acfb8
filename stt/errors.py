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


class NotFound(ApiError):
    code = "not_found"


class NotReady(ApiError):
    """The thing exists but is not in a state to give what was asked (a job's result before it completed)."""

    code = "not_ready"


class ModelNotFound(ApiError):
    code = "model_not_found"


class UnknownModel(BadRequest):
    """A request named a model the config does not list (OpenAI's face answers it as ModelNotFound)."""

    code = "unknown_model"


class UnsupportedEncoding(ApiError):
    code = "unsupported_encoding"
