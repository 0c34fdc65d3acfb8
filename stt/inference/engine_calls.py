"""The one wrapper of blocking engine calls: an engine exception becomes an EngineError with a safe message
(the exception's type, never its text), logged with its traceback; the worker thread and the model stay usable."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from stt.errors import ApiError, EngineError

log = logging.getLogger("stt.inference")
T = TypeVar("T")


def call_engine(job: Callable[[], T], failed: str = "Transcription failed") -> T:
    """Run ``job`` (in a scheduler worker); ``failed`` starts the client's message."""
    try:
        return job()
    except ApiError:
        raise
    except Exception as exc:
        log.exception("%s", failed)
        raise EngineError(f"{failed}: {type(exc).__name__}") from exc


def guarded(job: Callable[[], T], failed: str = "Transcription failed") -> Callable[[], T]:
    """``job`` wrapped by ``call_engine``, to hand to the scheduler."""
    return lambda: call_engine(job, failed)
