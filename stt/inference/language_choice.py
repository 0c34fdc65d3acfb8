"""An upload's language when detection is unsure between two: the first window decoded in both, and the language
of the likelier reading wins (the joint rule of stt.engines.rivals: P(language | audio) x P(text | audio,
language)).

What it costs: one more decoding of the first window, batched with the first, only where the detection is
unsure; the winner's decoding is the first window's result (the same request decodes to the same result
whatever it is batched with), so it is not decoded again. An upload whose first window is mostly speech (over
15 s: ``window_detects``) has that window decoded asking for no language: the engine detects the language on
the window's own encoding and makes the same choice there, and the language of that decoding is the upload's.
Uploads whose language is given are not concerned; a list of allowed languages narrows the candidates first, as
it narrows detection.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from stt.engines.base import Engine, TranscribeOptions, WindowResult
from stt.engines.rivals import likeliest, rivals
from stt.inference.speech_windows import (Language, SpeechWindow, in_language, needs_language, upload_ranking,
                                         window_detects, window_request)


@dataclasses.dataclass(frozen=True)
class LanguageChoice:
    language: Language | None  # None: the language was given, or there is no speech
    first: WindowResult | None = None  # the first window decoded in ``language``, when choosing decoded it


def choose_upload_language(engine: Engine, upload: np.ndarray, speech: Sequence[tuple[int, int]],
                           options: TranscribeOptions, first: SpeechWindow | None) -> LanguageChoice:
    """The upload's language, detected once (on 30 s of the upload from its first speech, as faster-whisper's
    ``transcribe`` detects), and where that detection is unsure between two languages, the one whose decoding
    of the ``first`` window is jointly likelier; a first window that ``window_detects`` is decoded asking for
    none, and its language is the upload's. Blocking: one encoder pass and, when unsure, one batched decoding
    (a first window that detects: its decoding); run it as a scheduler job."""
    if first is None or not needs_language(engine, options, speech):
        return LanguageChoice(None)
    if window_detects(engine, first):
        result = engine.decode_windows([window_request(first, upload, options)])[0]
        return LanguageChoice((result.language, result.language_probability), result)
    candidates = rivals(upload_ranking(engine, upload, speech), options.languages)
    if len(candidates) < 2:
        return LanguageChoice(candidates[0] if candidates else None)
    results = engine.decode_windows([window_request(first, upload, in_language(options, c)) for c in candidates])
    best = likeliest(candidates, results)
    return LanguageChoice(candidates[best], results[best])
