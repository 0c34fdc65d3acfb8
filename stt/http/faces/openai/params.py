"""OpenAI's audio API parameters: POST /v1/audio/transcriptions and /v1/audio/translations."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Iterable
from typing import Any

from stt.diarization.types import DiarizeOptions
from stt.engines.base import TranscribeOptions
from stt.errors import BadRequest, ModelNotFound
from stt.inference.chunking import Chunking
from stt.http.params import (LANGUAGES, OUTPUTS, PROMPT_MAX_CHARS, Param, diarize_options, model_param,
                             parse_params, temperature_schedule)

ALIAS = "whisper-1"  # the id OpenAI clients send by default
# OpenAI's own transcription models: a client written for OpenAI sends them; they mean the default model.
OPENAI_MODELS = (ALIAS, "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-4o-transcribe-diarize")

OPENAI_FORMATS = (*OUTPUTS, "diarized_json")  # the native renderers, and speaker segments (transcriptions)
STREAMED_FORMATS = ("json", "diarized_json")  # the others ignore stream=true, as OpenAI's whisper-1 does
GRANULARITIES = ("segment", "word")
INCLUDES = ("logprobs",)
CHUNKING = "chunking_strategy"
CHUNKING_TYPES = ("server_vad", "auto")
CHUNKING_MAX_CHARS = 1000
MAX_SILENCE_MS = 30_000  # a window holds 30 s: longer pauses never join anything
MAX_PADDING_MS = 10_000

OPENAI_FIELDS: tuple[Param, ...] = (
    model_param("Model id: one of `GET /v1/models`. `whisper-1` (and OpenAI's `gpt-4o-transcribe`, "
                "`gpt-4o-mini-transcribe`, `gpt-4o-transcribe-diarize`) means the server's default model; a name "
                "of the config's `asr.models` selects that model (loaded on first use). Any other is a 404 "
                "`model_not_found`.", required=True),
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
    Param("stream", "boolean", "`true`: the answer comes as Server-Sent Events, `transcript.text.delta` as each "
          "speech window is decoded (in order), then `transcript.text.done` (and, for `diarized_json`, "
          "`transcript.text.segment` events before it). Formats that cannot stream (`text`, `srt`, `vtt`, "
          "`verbose_json`) ignore it, as OpenAI's `whisper-1` does.", default=False),
    Param("include[]", "string", "`logprobs`: the log probability of each word (Whisper's word probability) "
          "in the `json` answer and in streamed events.", enum=INCLUDES, repeated=True),
    Param("chunking_strategy", "string", "`auto` (the server's own cuts, the default), or a JSON object "
          "`{\"type\": \"server_vad\", \"silence_duration_ms\", \"prefix_padding_ms\", \"threshold\"}`; "
          "the SDKs send an object as the `chunking_strategy[...]` fields below.",
          max_length=CHUNKING_MAX_CHARS),
    Param(f"{CHUNKING}[type]", "string", "`server_vad` (or `auto`).", enum=CHUNKING_TYPES),
    Param(f"{CHUNKING}[silence_duration_ms]", "integer", "Pauses shorter than this do not cut the audio into "
          "separate segments (the speech search cuts at 160 ms by default).", minimum=0, maximum=MAX_SILENCE_MS),
    Param(f"{CHUNKING}[prefix_padding_ms]", "integer", "Audio kept before each piece of speech (at least the "
          "speech search's own 400 ms).", minimum=0, maximum=MAX_PADDING_MS),
    Param(f"{CHUNKING}[threshold]", "number", "Accepted (0 to 1) and not used: the speech search keeps the "
          "threshold it was evaluated with.", minimum=0.0, maximum=1.0),
)
CHUNKING_FIELDS = tuple(p.name for p in OPENAI_FIELDS if p.name.startswith(f"{CHUNKING}["))

# Translations take neither a language (the output is English) nor timestamp granularities, as OpenAI's.
OPENAI_TRANSLATION_FIELDS: tuple[Param, ...] = tuple(
    (dataclasses.replace(p, enum=OUTPUTS, description="`json`, `text`, `srt`, `verbose_json` or `vtt`.")
     if p.name == "response_format" else p)
    for p in OPENAI_FIELDS
    if p.name not in ("language", "timestamp_granularities[]", "stream", "include[]", CHUNKING, *CHUNKING_FIELDS))


@dataclasses.dataclass(frozen=True)
class OpenAIRequest:
    options: TranscribeOptions
    response_format: str
    granularities: tuple[str, ...]
    diarize: DiarizeOptions | None = None
    stream: bool = False  # Server-Sent Events (only for the formats that stream)
    logprobs: bool = False
    chunking: Chunking | None = None
    model: str = ALIAS


def openai_request(pairs: Iterable[tuple[str, str]], task: str, default_beam_size: int) -> OpenAIRequest:
    v = parse_params(OPENAI_FIELDS if task == "transcribe" else OPENAI_TRANSLATION_FIELDS, pairs)
    granularities = tuple(v.get("timestamp_granularities[]", ())) or ("segment",)
    if "word" in granularities and v["response_format"] != "verbose_json":
        raise BadRequest("timestamp_granularities[]: `word` needs response_format=verbose_json",
                         param="timestamp_granularities[]")
    diarize = diarize_options(v["response_format"] == "diarized_json")
    logprobs = "logprobs" in v.get("include[]", ())
    options = TranscribeOptions(
        language=v.get("language"), task=task, beam_size=default_beam_size, initial_prompt=v["prompt"],
        word_timestamps="word" in granularities or diarize is not None or logprobs,
        temperature=temperature_schedule(v["temperature"]))
    stream = bool(v.get("stream")) and v["response_format"] in STREAMED_FORMATS
    return OpenAIRequest(options, v["response_format"], granularities, diarize, stream, logprobs,
                         chunking_of(v) if task == "transcribe" else None, v["model"])


def chunking_of(v: dict[str, Any]) -> Chunking | None:
    """``chunking_strategy`` as ``auto``, as a JSON object, or as the SDK's ``chunking_strategy[...]`` fields
    (not both) -> the cuts asked for (None: the server's own)."""
    fields = {name[len(CHUNKING) + 1:-1]: v[name] for name in CHUNKING_FIELDS if v[name] is not None}
    raw = v[CHUNKING]
    if raw is not None and fields:
        raise BadRequest(f"{CHUNKING}: give it as one value or as {CHUNKING}[...] fields, not both", param=CHUNKING)
    if raw is not None:
        fields = _chunking_json(raw)
    kind = fields.pop("type", None)
    if kind is None and fields:
        raise BadRequest(f"{CHUNKING}[type]: required with the other {CHUNKING} fields", param=f"{CHUNKING}[type]")
    if kind == "auto" and fields:
        raise BadRequest(f"{CHUNKING}: `auto` takes no parameters", param=CHUNKING)
    if kind != "server_vad":
        return None
    return Chunking(silence_s=fields.get("silence_duration_ms", 0) / 1000,
                    padding_s=fields.get("prefix_padding_ms", 0) / 1000)


def _chunking_json(raw: str) -> dict[str, Any]:
    """``auto`` or a JSON object, each value checked as the matching ``chunking_strategy[...]`` field."""
    if raw.strip() == "auto":
        return {"type": "auto"}
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise BadRequest(f"{CHUNKING}: expected `auto` or a JSON object with a `type`", param=CHUNKING)
    params = {p.name: p for p in OPENAI_FIELDS}
    out: dict[str, Any] = {}
    for key, value in parsed.items():
        param = params.get(f"{CHUNKING}[{key}]")
        if param is None or isinstance(value, (bool, dict, list)) or value is None:
            raise BadRequest(f"{CHUNKING}: unknown or invalid field {str(key)[:40]!r}", param=CHUNKING)
        out[key] = param.parse(str(value))
    if "type" not in out:
        raise BadRequest(f"{CHUNKING}: the object needs a `type` (`server_vad` or `auto`)", param=CHUNKING)
    return out


def openai_model(model_id: str, configured: Collection[str]) -> str | None:
    """OpenAI's ``model`` -> the configured model to use (None: the default); 404 ``model_not_found`` as
    OpenAI answers an id it does not have. A configured name wins over OpenAI's own names."""
    if model_id in configured:
        return model_id
    if model_id in OPENAI_MODELS:
        return None
    shown = model_id if len(model_id) <= 40 else model_id[:40] + "..."
    raise ModelNotFound(f"The model `{shown}` does not exist or you do not have access to it.", param="model")
