"""Window decoding for engines without a batched decoder: one ``transcribe`` call per window.

Every engine declares ``decode_windows`` (stt.engines.base.Engine); faster-whisper batches many windows in
one encode/generate (stt.engines.batched_windows), and any other engine can answer with this fallback, so
live streaming and windowed uploads work on every engine and batching is an optimisation, not a requirement.
"""

from __future__ import annotations

from collections.abc import Sequence

from stt.engines.base import Engine, TranscribeOptions, WindowRequest, WindowResult

__all__ = ["WindowRequest", "WindowResult", "decode_by_transcribe"]


def decode_by_transcribe(engine: Engine, requests: Sequence[WindowRequest]) -> list[WindowResult]:
    """Blocking; call from a scheduler job only."""
    return [_transcribe_window(engine, r) for r in requests]


def _transcribe_window(engine: Engine, request: WindowRequest) -> WindowResult:
    # Greedy-or-beam at temperature 0 only, no context from earlier windows: what the batched decoder does.
    # A window holds speech already: no second VAD pass inside it.
    options = TranscribeOptions(language=request.language, task=request.task, beam_size=request.beam_size,
                                word_timestamps=request.words, initial_prompt=request.prompt,
                                temperature=(0.0,), condition_on_previous_text=False,
                                vad_filter=False)
    transcript = engine.transcribe(request.audio, options)
    words = tuple(w for s in transcript.segments for w in s.words)
    return WindowResult(transcript.text, words, transcript.language, transcript.language_probability)
