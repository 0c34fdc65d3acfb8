"""The server events of a Realtime transcription session, rendered as OpenAI sends them (every one with its
own ``event_id``), and the ids of items and sessions."""

from __future__ import annotations

import itertools
import secrets
from typing import Any

from stt.http.faces.realtime.config import SessionConfig, Shape, render_session
from stt.http.faces.realtime.errors import EventError


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


class Events:
    """Builds one session's server events; ``event_id``s are unique within the server's life."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._prefix = secrets.token_hex(4)
        self._seq = itertools.count(1)

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "event_id": f"event_{self._prefix}{next(self._seq):06d}", **fields}

    def session(self, config: SessionConfig, shape: Shape, prefix: str, created: bool) -> dict[str, Any]:
        """``session.created/updated`` or ``transcription_session.created/updated`` (``prefix``), the session
        in the GA or the beta ``shape``."""
        return self._event(f"{prefix}.{'created' if created else 'updated'}",
                           session=render_session(config, shape, self.session_id))

    def speech_started(self, item_id: str, audio_start_ms: int) -> dict[str, Any]:
        return self._event("input_audio_buffer.speech_started", audio_start_ms=audio_start_ms, item_id=item_id)

    def speech_stopped(self, item_id: str, audio_end_ms: int) -> dict[str, Any]:
        return self._event("input_audio_buffer.speech_stopped", audio_end_ms=audio_end_ms, item_id=item_id)

    def committed(self, item_id: str, previous_item_id: str | None) -> dict[str, Any]:
        return self._event("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous_item_id)

    def cleared(self) -> dict[str, Any]:
        return self._event("input_audio_buffer.cleared")

    def delta(self, item_id: str, text: str) -> dict[str, Any]:
        return self._event("conversation.item.input_audio_transcription.delta", item_id=item_id, content_index=0,
                           delta=text)

    def completed(self, item_id: str, transcript: str, seconds: float) -> dict[str, Any]:
        # whisper-1's usage: billed by audio duration (OpenAI's "duration" usage shape).
        return self._event("conversation.item.input_audio_transcription.completed", item_id=item_id,
                           content_index=0, transcript=transcript,
                           usage={"type": "duration", "seconds": round(seconds, 3)})

    def error(self, error: EventError, client_event_id: str | None = None) -> dict[str, Any]:
        return self._event("error", error={"type": error.kind, "code": error.code, "message": error.message,
                                           "param": error.param, "event_id": client_event_id})
