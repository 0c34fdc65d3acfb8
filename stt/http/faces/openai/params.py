"""OpenAI's audio API parameters: POST /v1/audio/transcriptions and /v1/audio/translations."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from stt.diarization.types import DiarizeOptions
from stt.engines.base import TranscribeOptions
from stt.errors import BadRequest
from stt.http.params import (LANGUAGES, OUTPUTS, PROMPT_MAX_CHARS, Param, diarize_options, parse_params,
                             temperature_schedule)

OPENAI_FORMATS = (*OUTPUTS, "diarized_json")  # the native renderers, and speaker segments (transcriptions)
GRANULARITIES = ("segment", "word")

OPENAI_FIELDS: tuple[Param, ...] = (
    Param("model", "string", "Model id. Any id is served by the loaded model (see `GET /v1/models`); "
          "`whisper-1` is the usual one.", required=True, max_length=200),
    Param("language", "string", "Spoken language (ISO-639-1). Omit to detect it.", enum=LANGUAGES),
    Param("prompt", "string", "Text to guide the style or continue a previous segment.",
          max_length=PROMPT_MAX_CHARS),
    Param("response_format", "string", "`json`, `text`, `srt`, `verbose_json`, `vtt`, or `diarized_json` "
          "(segments with a `speaker`, as `gpt-4o-transcribe-diarize` answers; transcriptions only).",
          default="json", enum=OPENAI_FORMATS),
    Param("temperature", "number", "Sampling temperature, 0 to 1; 0 uses Whisper's fallback schedule.",
          default=0.0, minimum=0.0, maximum=1.0),
    Param("timestamp_granularities[]", "string", "`segment` and/or `word`; needs `response_format=verbose_json`.",
          enum=GRANULARITIES, repeated=True),
    Param("chunking_strategy", "string", "Accepted for compatibility (OpenAI requires `auto` for diarization of "
          "audio over 30 s); the server always cuts long audio itself.", max_length=1000, ignored=True),
)

# Translations take neither a language (the output is English) nor timestamp granularities, as OpenAI's.
OPENAI_TRANSLATION_FIELDS: tuple[Param, ...] = tuple(
    (dataclasses.replace(p, enum=OUTPUTS, description="`json`, `text`, `srt`, `verbose_json` or `vtt`.")
     if p.name == "response_format" else p)
    for p in OPENAI_FIELDS if p.name not in ("language", "timestamp_granularities[]", "chunking_strategy"))


@dataclasses.dataclass(frozen=True)
class OpenAIRequest:
    options: TranscribeOptions
    response_format: str
    granularities: tuple[str, ...]
    diarize: DiarizeOptions | None = None


def openai_request(pairs: Iterable[tuple[str, str]], task: str, default_beam_size: int) -> OpenAIRequest:
    v = parse_params(OPENAI_FIELDS if task == "transcribe" else OPENAI_TRANSLATION_FIELDS, pairs)
    granularities = tuple(v.get("timestamp_granularities[]", ())) or ("segment",)
    if "word" in granularities and v["response_format"] != "verbose_json":
        raise BadRequest("timestamp_granularities[]: `word` needs response_format=verbose_json",
                         param="timestamp_granularities[]")
    diarize = diarize_options(v["response_format"] == "diarized_json")
    options = TranscribeOptions(
        language=v.get("language"), task=task, beam_size=default_beam_size, initial_prompt=v["prompt"],
        word_timestamps="word" in granularities or diarize is not None,
        temperature=temperature_schedule(v["temperature"]))
    return OpenAIRequest(options, v["response_format"], granularities, diarize)
