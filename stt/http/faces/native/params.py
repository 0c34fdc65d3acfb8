"""The native API's parameters: POST /stt and POST /detect-language."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from stt.diarization.types import DiarizeOptions
from stt.engines.base import TranscribeOptions
from stt.errors import BadRequest
from stt.http.params import (LANGUAGES, MAX_SPEAKERS, OUTPUTS, PROMPT_MAX_CHARS, Param, diarize_options,
                             model_param, parse_params, temperature_schedule)

MODEL = model_param("A model of the config's `asr.models` (listed by `GET /v1/models`); default: the server's "
                    "default model. It loads on first use. An unknown name is a 400.")

LANGUAGE_LIST_MAX_CHARS = 400  # all of Whisper's 100 codes, comma-separated, fit

STT_PARAMS: tuple[Param, ...] = (
    Param("language", "string", "Spoken language as a Whisper code (`en`), `auto` to detect it, or a "
          "comma-separated list of the languages detection may answer (`en,de`).", default="auto",
          max_length=LANGUAGE_LIST_MAX_CHARS),
    Param("task", "string", "`transcribe`, or `translate` the speech to English.", default="transcribe",
          enum=("transcribe", "translate")),
    Param("output", "string", "Response format: `json`, `text`, `srt`, `vtt` or `verbose_json` (segments and "
          "words).", default="json", enum=OUTPUTS),
    Param("word_timestamps", "boolean", "Compute word-level timestamps (shown by `verbose_json`).", default=False),
    Param("vad_filter", "boolean", "Decode only the speech the Silero voice activity detector finds, in windows "
          "of up to 30 s batched with other work (silence gives an empty text). `false`: decode the whole "
          "audio in order, each 30 s window conditioned on the previous text.", default=True),
    Param("beam_size", "integer", "Beam width of the decoder (default: `asr.beam_size` of the config).",
          minimum=1, maximum=20),
    Param("initial_prompt", "string", "Text that conditions the first window: names, spelling, style.",
          max_length=PROMPT_MAX_CHARS),
    Param("temperature", "number", "Sampling temperature to start from; on failure Whisper retries at "
          "+0.2 steps up to 1.0. 0 (default) is greedy/beam search first.", default=0.0, minimum=0.0, maximum=1.0),
    Param("hotwords", "string", "Names and terms to spell right (space-separated), given to the decoder as "
          "hotwords on every window.", max_length=PROMPT_MAX_CHARS),
    Param("diarize", "boolean", "Label speakers: `speaker` (0, 1, ...) on segments and words (implies word "
          "timestamps); SRT/VTT cues split at speaker changes and labelled.", default=False),
    Param("min_speakers", "integer", "With `diarize`: at least this many speakers.", minimum=1,
          maximum=MAX_SPEAKERS),
    Param("max_speakers", "integer", "With `diarize`: at most this many speakers.", minimum=1,
          maximum=MAX_SPEAKERS),
    MODEL,
)

DETECT_PARAMS: tuple[Param, ...] = (
    Param("top", "integer", "How many of the most likely languages to list.", default=5, minimum=1,
          maximum=len(LANGUAGES)),
    MODEL,
)


@dataclasses.dataclass(frozen=True)
class SttRequest:
    options: TranscribeOptions
    output: str
    diarize: DiarizeOptions | None = None
    model: str | None = None


def stt_request(pairs: Iterable[tuple[str, str]], default_beam_size: int) -> SttRequest:
    v = parse_params(STT_PARAMS, pairs)
    diarize = diarize_options(v["diarize"], v["min_speakers"], v["max_speakers"])
    language, languages = language_choice(v["language"])
    options = TranscribeOptions(
        language=language, languages=languages, task=v["task"], beam_size=v["beam_size"] or default_beam_size,
        word_timestamps=v["word_timestamps"] or diarize is not None, vad_filter=v["vad_filter"],
        initial_prompt=v["initial_prompt"], temperature=temperature_schedule(v["temperature"]),
        hotwords=v["hotwords"])
    return SttRequest(options, v["output"], diarize, v["model"])


def language_choice(value: str, param: str = "language") -> tuple[str | None, tuple[str, ...]]:
    """``auto`` -> detect; ``en`` -> English; ``en,de`` -> detect, answering English or German only.
    Returns (the language, or None to detect; the languages detection may answer, () for any)."""
    codes = tuple(dict.fromkeys(c.strip().lower() for c in value.split(",")))
    if codes == ("auto",):
        return None, ()
    for code in codes:
        if code not in LANGUAGES:
            raise BadRequest(f"{param}: {code!r} is not a Whisper language code (expected `auto`, a code such "
                             "as `en`, or a comma-separated list of codes)", param=param)
    return (codes[0], ()) if len(codes) == 1 else (None, codes)
