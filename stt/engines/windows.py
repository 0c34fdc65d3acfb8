"""Window decoding for engines without a batched decoder: one ``transcribe`` call per window.

Every engine declares ``decode_windows`` (stt.engines.base.Engine); faster-whisper batches many windows in
one encode/generate (stt.engines.batched_windows), and any other engine can answer with this fallback, so
live streaming and windowed uploads work on every engine and batching is an optimisation, not a requirement.
"""

from __future__ import annotations

from collections.abc import Sequence

from stt.engines.base import Engine, Segment, TranscribeOptions, WindowRequest, WindowResult, WindowScores

__all__ = ["WindowRequest", "WindowResult", "WindowScores", "decode_by_transcribe"]


def decode_by_transcribe(engine: Engine, requests: Sequence[WindowRequest]) -> list[WindowResult]:
    """Blocking; call from a scheduler job only."""
    return [_transcribe_window(engine, r) for r in requests]


def _transcribe_window(engine: Engine, request: WindowRequest) -> WindowResult:
    # Greedy-or-beam at temperature 0 only, no context from earlier windows: what the batched decoder does.
    # A window holds speech already: no second VAD pass inside it.
    options = TranscribeOptions(language=request.language, languages=request.languages, task=request.task,
                                beam_size=request.beam_size,
                                word_timestamps=request.words, initial_prompt=request.prompt,
                                temperature=(0.0,), condition_on_previous_text=False,
                                vad_filter=False)
    transcript = engine.transcribe(request.audio, options)
    words = tuple(w for s in transcript.segments for w in s.words)
    return WindowResult(transcript.text, words, transcript.language, transcript.language_probability,
                        _scores(transcript.segments))


def _scores(segments: Sequence[Segment]) -> WindowScores | None:
    """The segments' scores, averaged over the window (weighted by their tokens); None when unknown."""
    known = [s for s in segments
             if None not in (s.avg_logprob, s.compression_ratio, s.no_speech_prob)]
    if not known or len(known) < len(segments):
        return None
    weights = [max(1, len(s.tokens)) for s in known]

    def mean(values: list[float]) -> float:
        return sum(v * w for v, w in zip(values, weights)) / sum(weights)

    # Whisper's avg_logprob is a decoding's log-probability over its tokens plus the end of text.
    logprob = sum(s.avg_logprob * (len(s.tokens) + 1) for s in known)  # type: ignore[operator]
    return WindowScores(mean([s.avg_logprob for s in known]),  # type: ignore[misc]
                        mean([s.compression_ratio for s in known]),  # type: ignore[misc]
                        mean([s.no_speech_prob for s in known]), logprob)  # type: ignore[misc]
