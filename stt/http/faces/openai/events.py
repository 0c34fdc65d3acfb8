"""OpenAI's transcription stream (``stream=true``) as Server-Sent Events.

Each event is one ``data:`` line holding the event's JSON (its ``type`` inside), as OpenAI sends them:
``transcript.text.delta`` as each speech window is decoded, in order; for ``diarized_json``, one
``transcript.text.segment`` per speaker turn once speakers are known (they need the whole audio); then
``transcript.text.done`` with the whole text and the usage. The deltas put together are the done event's text.

The response starts only with the first event: a refusal (queue full, engine failure) before any text is an
ordinary HTTP error. A failure after it is an ``error`` event (OpenAI's error object), and the stream ends.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from aiohttp import web

from stt.engines.base import Transcript
from stt.errors import ApiError
from stt.http.errors import info_from_error
from stt.http.faces.face import ErrorInfo
from stt.http.faces.openai.errors import openai_error_body
from stt.http.faces.openai.render import openai_diarized_json, word_logprobs
from stt.http.formats import rounded_s
from stt.http.stats import request_stats
from stt.inference.uploads import WindowText

log = logging.getLogger("stt.errors")
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
               "X-Accel-Buffering": "no"}  # nginx and similar proxies pass each event on at once


def sse(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n"


class _Deltas:
    """The text sent so far, so that the deltas put together are the final text (stripped, as it is)."""

    def __init__(self, logprobs: bool) -> None:
        self.sent = ""
        self.logprobs = logprobs

    def window(self, window: WindowText) -> dict[str, Any] | None:
        text = window.text if self.sent else window.text.lstrip()
        if not text:
            return None
        self.sent += text
        event: dict[str, Any] = {"type": "transcript.text.delta", "delta": text}
        if self.logprobs:
            event["logprobs"] = word_logprobs(w for s in window.segments for w in s.words)
        return event

    def rest(self, final: str) -> dict[str, Any] | None:
        """What the final text has beyond the deltas (all of it when it came in one piece)."""
        rest = final[len(self.sent):] if final.startswith(self.sent) else ""
        if not rest:
            return None
        self.sent += rest
        return {"type": "transcript.text.delta", "delta": rest}


def final_events(t: Transcript, diarized: bool, logprobs: bool) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = openai_diarized_json(t)["segments"] if diarized else []
    done: dict[str, Any] = {"type": "transcript.text.done", "text": t.text,
                            "usage": {"type": "duration", "seconds": rounded_s(t.duration)}}
    if logprobs:
        done["logprobs"] = word_logprobs(w for s in t.segments for w in s.words)
    return [*events, done]


async def stream_response(request: web.Request, events: AsyncGenerator[WindowText | Transcript, None], *,
                          diarized: bool, logprobs: bool) -> web.StreamResponse:
    deltas = _Deltas(logprobs)
    response: web.StreamResponse | None = None
    async with aclosing(events):  # a client that leaves drops the windows not decoded yet
        try:
            async for event in events:
                if isinstance(event, WindowText):
                    out = [deltas.window(event)]
                else:
                    out = [deltas.rest(event.text), *final_events(event, diarized, logprobs)]
                if response is None:  # headers go with the first event: a refusal before it is a plain error
                    response = web.StreamResponse(headers=SSE_HEADERS)
                    await response.prepare(request)
                await response.write(b"".join(sse(e) for e in out if e is not None))
        except Exception as exc:
            if response is None:
                raise  # nothing sent yet: the error middleware answers it with its status
            await _error_event(request, response, exc)
    assert response is not None  # the stream always ends with a Transcript
    await response.write_eof()
    return response


async def _error_event(request: web.Request, response: web.StreamResponse, exc: Exception) -> None:
    if isinstance(exc, ApiError):
        info = info_from_error(exc)
    else:
        log.error("unhandled error while streaming %s", request.path, exc_info=exc)
        info = ErrorInfo(500, "Internal server error", "internal_error")
    request_stats(request).error_code = info.code
    await response.write(sse({"type": "error", **openai_error_body(info)}))
