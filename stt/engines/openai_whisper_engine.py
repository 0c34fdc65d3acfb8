"""openai-whisper (PyTorch, fp32 on CPU): the reference implementation, loaded from a local checkpoint."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import whisper

from stt.audio import SAMPLE_RATE, duration_seconds
from stt.engines.ct2_to_torch import load_whisper_model
from stt.engines.speech import silero_speech, silero_steps, whisper_speech
from stt.engines.base import (Segment, TranscribeOptions, Transcript, WindowRequest, WindowResult, Word,
                              join_segments)
from stt.engines.languages import allowed_languages, choose_language
from stt.engines.windows import decode_by_transcribe


class OpenAIWhisperEngine:
    name = "openai-whisper"

    def __init__(self, checkpoint: Path, model_name: str, *, threads: int, device: str = "cpu",
                 languages: tuple[str, ...] = ()) -> None:
        self.model_name = model_name
        self.languages = languages  # asr.languages: what detection may answer (empty: any)
        if threads > 0:
            torch.set_num_threads(threads)
        model = load_whisper_model(checkpoint, device)
        self._model = model.eval()
        self._fp16 = device != "cpu"
        self.multilingual = model.is_multilingual
        # One model call at a time: openai-whisper's decoder keeps its key/value cache in hooks installed on
        # the shared modules for the length of a call, so two calls at once would mix their caches.
        self.parallel_calls = 1

    def transcribe(self, audio: np.ndarray, options: TranscribeOptions) -> Transcript:
        language, probability = options.language, 1.0
        if language is None:
            # Detect here rather than inside whisper.transcribe, which would not report the probability.
            language, probability = choose_language(self.detect_language(audio),
                                                    allowed_languages(options.languages, self.languages))
        kwargs: dict[str, Any] = {}
        if options.vad_filter:
            kwargs["clip_timestamps"] = _speech_clips(audio)
        result = whisper.transcribe(
            self._model, audio, language=language, task=options.task, beam_size=options.beam_size,
            temperature=options.temperature, word_timestamps=options.word_timestamps,
            # openai-whisper has no hotwords: they join the prompt, which is how faster-whisper uses them too.
            initial_prompt=" ".join(filter(None, (options.hotwords, options.initial_prompt))) or None,
            fp16=self._fp16,
            condition_on_previous_text=options.condition_on_previous_text,
            without_timestamps=options.without_timestamps, verbose=None, **kwargs)
        segments = tuple(_segment(s) for s in result["segments"])
        return Transcript(text=join_segments(segments), segments=segments, language=language,
                          language_probability=probability,
                          duration=duration_seconds(audio))

    def decode_windows(self, requests: Sequence[WindowRequest]) -> list[WindowResult]:
        """One window at a time through whisper.transcribe: correct, not batched."""
        return decode_by_transcribe(self, requests)

    @torch.inference_mode()
    def find_speech(self, audio: np.ndarray) -> list[tuple[int, int]]:
        return silero_speech(audio)

    def speech_steps(self, audio: np.ndarray) -> Iterator[list[tuple[int, int]]]:
        """``find_speech`` a minute at a time (see stt.inference.speech_windows.SpeechSearch)."""
        return silero_steps(audio)

    def detect_language(self, audio: np.ndarray) -> list[tuple[str, float]]:
        if not self.multilingual:
            return [("en", 1.0)]
        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(audio)),
                                          n_mels=self._model.dims.n_mels).to(self._model.device)
        _, probs = self._model.detect_language(mel)
        return sorted(((k, float(v)) for k, v in probs.items() if not self.languages or k in self.languages),
                      key=lambda kv: -kv[1])

    def close(self) -> None:
        del self._model


def _speech_clips(audio: np.ndarray) -> list[float] | str:
    """Silero VAD (shipped with faster-whisper) -> openai-whisper's clip_timestamps, so both engines skip
    silence the same way."""
    chunks = whisper_speech(audio)  # a minute at a time: the whole-file search took GBs for hours of audio
    if not chunks:
        return "0"
    return [t for start, end in chunks for t in (start / SAMPLE_RATE, end / SAMPLE_RATE)]


def _segment(s: dict[str, Any]) -> Segment:
    words = tuple(Word(float(w["start"]), float(w["end"]), w["word"], float(w["probability"]))
                  for w in s.get("words", ()))
    return Segment(id=s["id"], start=s["start"], end=s["end"], text=s["text"], words=words,
                   avg_logprob=s["avg_logprob"], no_speech_prob=s["no_speech_prob"],
                   compression_ratio=s["compression_ratio"], temperature=s["temperature"],
                   tokens=tuple(s["tokens"]))
