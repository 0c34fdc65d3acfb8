"""faster-whisper (CTranslate2): int8 on CPU, the default engine."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel

from stt.engines.features import BoundedMemoryFeatureExtractor
from faster_whisper.transcribe import restore_speech_timestamps

from stt.audio import SAMPLE_RATE, duration_seconds
from stt.engines.speech import join_stretches, silero_speech, silero_steps, sound_stretches, whisper_speech
from stt.engines.base import (Segment, TranscribeOptions, Transcript, WindowRequest, WindowResult, Word,
                              join_segments)
from stt.engines.batched_windows import batch_shape, decode_batch, detects_in_window
from stt.engines.languages import allowed_languages, choose_language


class FasterWhisperEngine:
    name = "faster-whisper"

    def __init__(self, model_dir: Path, model_name: str, *, compute_type: str, threads: int,
                 workers: int, device: str = "cpu", languages: tuple[str, ...] = ()) -> None:
        self.model_name = model_name
        self.languages = languages  # asr.languages: what detection may answer (empty: any)
        # local_files_only: never reach for the network, even when a side file is missing.
        self._model = WhisperModel(str(model_dir), device=device, compute_type=compute_type,
                                   cpu_threads=threads, num_workers=workers, local_files_only=True)
        self._model.feature_extractor = BoundedMemoryFeatureExtractor(**self._model.feat_kwargs)
        self.multilingual = self._model.model.is_multilingual
        self.parallel_calls = workers  # CTranslate2 replicas sharing the weights, one call each

    def transcribe(self, audio: np.ndarray, options: TranscribeOptions) -> Transcript:
        language, allowed = options.language, allowed_languages(options.languages, self.languages)
        restricted: float | None = None  # the probability of a language detected among the allowed ones
        if language is None and allowed:
            language, restricted = choose_language(self.detect_language(audio), allowed)
        # faster-whisper's own vad_filter would search the whole upload at once; the same search is run a
        # minute at a time here (stt/engines/speech.py), and the speech kept is decoded as faster-whisper does:
        # joined, then its times mapped back. vad_filter=false keeps all but long silent stretches.
        stretches = whisper_speech(audio) if options.vad_filter else sound_stretches(audio)
        kept = join_stretches(audio, stretches)
        segments, info = self._model.transcribe(
            kept,
            language=language,
            task=options.task,
            beam_size=options.beam_size,
            temperature=list(options.temperature),
            word_timestamps=options.word_timestamps,
            vad_filter=False,
            initial_prompt=options.initial_prompt,
            condition_on_previous_text=options.condition_on_previous_text,
            without_timestamps=options.without_timestamps,
            hotwords=options.hotwords,
        )
        if kept is not audio and stretches:
            segments = restore_speech_timestamps(segments, [{"start": a, "end": b} for a, b in stretches],
                                                 SAMPLE_RATE)
        out = tuple(_segment(s) for s in segments)  # the generator runs the decoding
        return Transcript(text=join_segments(out), segments=out, language=info.language,
                          language_probability=float(info.language_probability if restricted is None
                                                     else restricted),
                          duration=duration_seconds(audio))

    def find_speech(self, audio: np.ndarray) -> list[tuple[int, int]]:
        return silero_speech(audio)

    def speech_steps(self, audio: np.ndarray) -> Iterator[list[tuple[int, int]]]:
        """``find_speech`` a minute at a time (see stt.inference.speech_windows.SpeechSearch)."""
        return silero_steps(audio)

    def detect_language(self, audio: np.ndarray) -> list[tuple[str, float]]:
        if not self.multilingual:
            return [("en", 1.0)]
        _, _, probs = self._model.detect_language(audio)
        return [(lang, float(p)) for lang, p in probs if not self.languages or lang in self.languages]

    def decode_windows(self, requests: Sequence[WindowRequest]) -> list[WindowResult]:
        """Many clients' windows (live passes, pieces of uploads) in one batched encode/generate/align."""
        if self.languages:
            requests = [dataclasses.replace(r, languages=allowed_languages(r.languages, self.languages))
                        for r in requests]
        return decode_batch(self._model, requests)

    @staticmethod
    def detects_in_window(samples: int) -> bool:
        """A window of ``samples`` asking for no language gets it detected on its own encoding (mostly speech)."""
        return detects_in_window(samples)

    @staticmethod
    def batch_shape(samples: int, beam_size: int) -> tuple[object, ...]:
        """Windows of one shape (and one prompt) are decoded in one batch, at less than their cost one by one."""
        return batch_shape(samples, beam_size)

    def close(self) -> None:
        del self._model


def _segment(s) -> Segment:  # type: ignore[no-untyped-def]  # faster_whisper.transcribe.Segment
    words = tuple(Word(w.start, w.end, w.word, w.probability) for w in (s.words or ()))
    return Segment(id=s.id, start=s.start, end=s.end, text=s.text, words=words,
                   avg_logprob=s.avg_logprob, no_speech_prob=s.no_speech_prob,
                   compression_ratio=s.compression_ratio, temperature=s.temperature or 0.0,
                   tokens=tuple(s.tokens))
