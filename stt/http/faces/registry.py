"""The faces an app serves, in the order their paths are matched. A new face: its folder, and one line here."""

from __future__ import annotations

from stt.http.faces import deepgram, jobs, native, openai, realtime
from stt.http.faces.face import Face

FACES: tuple[Face, ...] = (native.FACE, jobs.FACE, openai.FACE, deepgram.FACE, deepgram.LIVE_FACE, realtime.FACE)
