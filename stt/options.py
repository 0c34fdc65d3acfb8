"""Request options of every API face, declared once and validated in one place.

Each face has a table of ``Param`` declarations. The same tables parse requests (query parameters and
multipart fields) and describe them in the OpenAPI document (``stt/http/openapi.py``), so the docs cannot drift
from what the server accepts. A parameter that is unknown, repeated or invalid is a 400 that names it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

from multidict import MultiMapping

from stt.audio import MAX_SOURCE_RATE, MIN_SOURCE_RATE
from stt.diarization.types import DiarizeOptions
from stt.engines.languages import LANGUAGE_CODES
from stt.engines.base import DEFAULT_TEMPERATURES, TranscribeOptions
from stt.errors import BadRequest

LANGUAGES: tuple[str, ...] = tuple(sorted(LANGUAGE_CODES))
TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off"})
OUTPUTS = ("json", "text", "srt", "vtt", "verbose_json")
TEMPERATURE_STEP = 0.2  # Whisper's increment on fallback
PROMPT_MAX_CHARS = 2000  # Whisper keeps at most 223 prompt tokens; anything far longer is a mistake
MULTICHANNEL_MAX = 8  # channels transcribed one by one: each costs a full transcription
MAX_SPEAKERS = 32
LANGUAGE_LIST_MAX_CHARS = 400  # all of Whisper's 100 codes, comma-separated, fit  # bound on min_speakers/max_speakers: clustering cost grows with it, and beyond is a typo


@dataclasses.dataclass(frozen=True)
class Param:
    name: str
    kind: str  # JSON-schema type: "string", "integer", "number" or "boolean"
    description: str
    default: Any = None
    enum: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    required: bool = False
    repeated: bool = False  # may be given several times (OpenAI's ``timestamp_granularities[]``)
    ignored: bool = False  # accepted for client compatibility, has no effect

    def parse(self, raw: str) -> Any:
        value = _PARSERS[self.kind](self, raw.strip() if self.kind != "string" else raw)
        if self.enum is not None and value not in self.enum:
            raise self.invalid(raw, "one of " + ", ".join(self.enum[:12]) + (", ..." if len(self.enum) > 12 else ""))
        if self.max_length is not None and len(value) > self.max_length:
            raise BadRequest(f"{self.name}: at most {self.max_length} characters", param=self.name)
        return value

    def invalid(self, raw: str, expected: str) -> BadRequest:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        return BadRequest(f"{self.name}: invalid value {shown!r}, expected {expected}", param=self.name)

    def schema(self) -> dict[str, Any]:
        """The JSON schema of one value, for the OpenAPI document."""
        out: dict[str, Any] = {"type": self.kind}
        for key, value in (("default", self.default), ("enum", self.enum and list(self.enum)),
                           ("minimum", self.minimum), ("maximum", self.maximum),
                           ("maxLength", self.max_length)):
            if value is not None:
                out[key] = value
        return out


def _parse_bool(param: Param, raw: str) -> bool:
    low = raw.lower()
    if low in TRUE:
        return True
    if low in FALSE:
        return False
    raise param.invalid(raw, "true or false")


def _parse_number(param: Param, raw: str) -> float:
    try:
        value = int(raw) if param.kind == "integer" else float(raw)
    except ValueError:
        raise param.invalid(raw, "an integer" if param.kind == "integer" else "a number") from None
    if not math.isfinite(value) or (param.minimum is not None and value < param.minimum) or (
            param.maximum is not None and value > param.maximum):
        low = "-inf" if param.minimum is None else f"{param.minimum:g}"
        high = "inf" if param.maximum is None else f"{param.maximum:g}"
        raise param.invalid(raw, f"a number from {low} to {high}")
    return value


_PARSERS = {"boolean": _parse_bool, "integer": _parse_number, "number": _parse_number,
            "string": lambda param, raw: raw}


def parse_params(table: Iterable[Param], pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``pairs`` (query and form fields, in order) -> {name: value} with defaults; BadRequest names the culprit."""
    params = {p.name: p for p in table}
    seen: dict[str, list[Any]] = {}
    for name, raw in pairs:
        param = params.get(name)
        if param is None:
            raise BadRequest(f"{name}: unknown parameter (known: {', '.join(params)})", param=name)
        if name in seen and not param.repeated:
            raise BadRequest(f"{name}: given more than once", param=name)
        seen.setdefault(name, []).append(param.parse(raw))
    values: dict[str, Any] = {}
    for name, param in params.items():
        if name in seen:
            values[name] = seen[name] if param.repeated else seen[name][0]
        elif param.required:
            raise BadRequest(f"{name}: required parameter is missing", param=name)
        else:
            values[name] = [] if param.repeated else param.default
    return values


def request_pairs(query: MultiMapping[str], fields: Iterable[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """Query parameters then multipart fields, repeats kept."""
    return list(query.items()) + list(fields)


def temperature_schedule(start: float) -> tuple[float, ...]:
    """A start temperature -> Whisper's fallback schedule from there to 1.0 (0 gives the default schedule)."""
    if start == 0:
        return DEFAULT_TEMPERATURES
    steps = math.floor((1.0 - start) / TEMPERATURE_STEP + 1e-9)  # never past 1.0
    return tuple(round(start + TEMPERATURE_STEP * i, 3) for i in range(steps + 1))


def language_choice(value: str, param: str = "language") -> tuple[str | None, tuple[str, ...]]:
    """``auto`` -> detect; ``en`` -> English; ``en,de`` -> detect, answering English or German only.
    Returns (the language, or None to detect; the languages detection may answer, () for any)."""
    codes = tuple(dict.fromkeys(c.strip().lower() for c in value.split(",")))
    if codes == ("auto",):
        return None, ()
    for code in codes:
        if code not in LANGUAGE_CODES:
            raise BadRequest(f"{param}: {code!r} is not a Whisper language code (expected `auto`, a code such "
                             "as `en`, or a comma-separated list of codes)", param=param)
    return (codes[0], ()) if len(codes) == 1 else (None, codes)


def bcp47_language(tag: str, param: str = "language") -> str:
    """Deepgram's BCP-47 tag ("en-US") -> the Whisper language code ("en"); 400 for one Whisper lacks."""
    language = tag.strip().split("-")[0].lower()
    if language not in LANGUAGES:
        raise BadRequest(f"{param}: {tag!r} is not a language Whisper knows", param=param)
    return language


def diarize_options(enabled: bool, min_speakers: int | None = None,
                    max_speakers: int | None = None) -> DiarizeOptions | None:
    """The diarization request, or None; 400 when the speaker bounds contradict each other."""
    if not enabled:
        if min_speakers is not None or max_speakers is not None:
            name = "min_speakers" if min_speakers is not None else "max_speakers"
            raise BadRequest(f"{name}: needs diarize=true", param=name)
        return None
    if min_speakers is not None and max_speakers is not None and min_speakers > max_speakers:
        raise BadRequest("min_speakers: larger than max_speakers", param="min_speakers")
    return DiarizeOptions(min_speakers=min_speakers or 1, max_speakers=max_speakers)


def check_model_support(options: TranscribeOptions, multilingual: bool, model: str) -> None:
    """An English-only model can neither transcribe another language nor translate."""
    if multilingual:
        return
    if options.language not in (None, "en"):
        raise BadRequest(f"language: the loaded model {model!r} is English-only", param="language")
    if options.task == "translate":
        raise BadRequest(f"task: the loaded model {model!r} is English-only and cannot translate", param="task")


# --- native API: POST /stt, POST /detect-language --------------------------------------------------------

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
)

DETECT_PARAMS: tuple[Param, ...] = (
    Param("top", "integer", "How many of the most likely languages to list.", default=5, minimum=1,
          maximum=len(LANGUAGES)),
)


@dataclasses.dataclass(frozen=True)
class SttRequest:
    options: TranscribeOptions
    output: str
    diarize: DiarizeOptions | None = None


def stt_request(pairs: Iterable[tuple[str, str]], default_beam_size: int) -> SttRequest:
    v = parse_params(STT_PARAMS, pairs)
    diarize = diarize_options(v["diarize"], v["min_speakers"], v["max_speakers"])
    language, languages = language_choice(v["language"])
    options = TranscribeOptions(
        language=language, languages=languages, task=v["task"], beam_size=v["beam_size"] or default_beam_size,
        word_timestamps=v["word_timestamps"] or diarize is not None, vad_filter=v["vad_filter"],
        initial_prompt=v["initial_prompt"], temperature=temperature_schedule(v["temperature"]),
        hotwords=v["hotwords"])
    return SttRequest(options, v["output"], diarize)


# --- OpenAI-compatible: POST /v1/audio/transcriptions and /v1/audio/translations ---------------------------

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


# --- Deepgram-compatible pre-recorded: POST /v1/listen ----------------------------------------------------

DEEPGRAM_PARAMS: tuple[Param, ...] = (
    Param("language", "string", "BCP-47 tag (`en`, `en-US`, `de`...); its primary subtag must be a Whisper "
          "language. Default `en`, as Deepgram's.", default="en", max_length=35),
    Param("detect_language", "string", "`true`: detect the spoken language (overrides `language`). Repeated "
          "with BCP-47 tags (`detect_language=en&detect_language=de`): detect it among those only.",
          max_length=35, repeated=True),
    Param("punctuate", "boolean", "Punctuation and capitals in `transcript`.", default=False),
    Param("smart_format", "boolean", "Formatted transcript (implies `punctuate`).", default=False),
    Param("model", "string", "Accepted for compatibility; the loaded Whisper model serves every request.",
          max_length=200, ignored=True),
    Param("tag", "string", "Accepted for compatibility; ignored.", max_length=200, repeated=True, ignored=True),
    Param("mip_opt_out", "boolean", "Accepted for compatibility; nothing is ever kept.", ignored=True),
    Param("diarize", "boolean", "Label speakers: `speaker` and `speaker_confidence` on every word.",
          default=False),
    Param("utterances", "boolean", "Add `results.utterances`: the words cut at pauses and speaker changes.",
          default=False),
    Param("paragraphs", "boolean", "Add `paragraphs` (sentences grouped per speaker turn) to the alternative.",
          default=False),
    Param("multichannel", "boolean", "Transcribe each audio channel on its own: one `results.channels[i]` per "
          f"input channel (at most {MULTICHANNEL_MAX}).", default=False),
    Param("keyterm", "string", "A name or term to spell right (repeatable); fed to Whisper as a hotword.",
          max_length=200, repeated=True),
    Param("keywords", "string", "`word` or `word:boost` (repeatable, Deepgram's older form of `keyterm`); "
          "the boost is ignored.", max_length=200, repeated=True),
)


@dataclasses.dataclass(frozen=True)
class DeepgramRequest:
    options: TranscribeOptions
    punctuate: bool
    detect_language: bool
    diarize: DiarizeOptions | None = None
    utterances: bool = False
    paragraphs: bool = False
    multichannel: bool = False


def deepgram_hotwords(keyterms: list[str], keywords: list[str]) -> str | None:
    """Deepgram's `keyterm`s and `keywords` (``word:boost``, the boost dropped) -> one hotword string."""
    terms = [*keyterms, *(k.rsplit(":", 1)[0] if ":" in k else k for k in keywords)]
    joined = " ".join(t.strip() for t in terms if t.strip())
    if len(joined) > PROMPT_MAX_CHARS:
        raise BadRequest(f"keyterm: at most {PROMPT_MAX_CHARS} characters in all", param="keyterm")
    return joined or None


def deepgram_detection(values: list[str]) -> tuple[bool, tuple[str, ...]]:
    """Deepgram's ``detect_language``: absent or ``false`` -> no; ``true`` -> any language; one or more
    BCP-47 tags -> detect among those (Whisper codes)."""
    flags = [v.strip().lower() for v in values if v.strip().lower() in TRUE | FALSE]
    tags = [v for v in values if v.strip().lower() not in TRUE | FALSE]
    if flags and tags or len(set(flags)) > 1:
        raise BadRequest("detect_language: either true/false or language tags, not both",
                         param="detect_language")
    if tags:
        return True, tuple(dict.fromkeys(bcp47_language(t, "detect_language") for t in tags))
    return bool(flags) and flags[0] in TRUE, ()


def deepgram_request(pairs: Iterable[tuple[str, str]], default_beam_size: int) -> DeepgramRequest:
    v = parse_params(DEEPGRAM_PARAMS, pairs)
    detect, languages = deepgram_detection(v["detect_language"])
    language = None if detect else bcp47_language(v["language"])
    options = TranscribeOptions(language=language, languages=languages, beam_size=default_beam_size,
                                word_timestamps=True,
                                hotwords=deepgram_hotwords(v["keyterm"], v["keywords"]))
    return DeepgramRequest(options, v["punctuate"] or v["smart_format"], detect,
                           diarize_options(v["diarize"]), v["utterances"], v["paragraphs"], v["multichannel"])


# --- live transcription: GET /listen and GET /v1/listen (WebSocket, Deepgram's live API) -------------------

LIVE_ENCODINGS = ("linear16",)
LIVE_ENDPOINTING_MS = 400  # Deepgram's default (10 ms) is shorter than our speech detector can judge
LIVE_MAX_CHANNELS = 8

LIVE_PARAMS: tuple[Param, ...] = (
    Param("encoding", "string", "`linear16`: raw little-endian Int16 frames. Omit it for containerized audio "
          "(WebM/Opus from MediaRecorder, Ogg), decoded as it arrives.", enum=LIVE_ENCODINGS),
    Param("sample_rate", "integer", "Sample rate of `linear16` audio in Hz (any rate is resampled).",
          default=16000, minimum=MIN_SOURCE_RATE, maximum=MAX_SOURCE_RATE),
    Param("channels", "integer", "Channels of `linear16` audio (mixed down to mono unless `multichannel`).",
          default=1, minimum=1, maximum=LIVE_MAX_CHANNELS),
    Param("multichannel", "boolean", "With `encoding=linear16`: transcribe each channel on its own; results "
          "carry `channel_index` [channel, channels].", default=False),
    Param("diarize", "boolean", "`speaker` (0, 1, ..., stable for the whole stream) and `speaker_confidence` "
          "on final words.", default=False),
    Param("language", "string", "BCP-47 tag (`en`, `en-US`, `de`...), or `multi` to detect per pass "
          "(multilingual models only).", default="en", max_length=35),
    Param("interim_results", "boolean", "Send `is_final: false` results while an utterance is spoken.",
          default=False),
    Param("endpointing", "string", "Milliseconds of silence that end an utterance (`speech_final: true`), at "
          "least 250; `false`: only at the maximum utterance length or on `Finalize`.", default=str(LIVE_ENDPOINTING_MS),
          max_length=10),
    Param("utterance_end_ms", "integer", "Send `UtteranceEnd` after this many ms without words.",
          minimum=1, maximum=60_000),
    Param("vad_events", "boolean", "Send `SpeechStarted` when speech begins.", default=False),
    Param("punctuate", "boolean", "Punctuated, cased transcript and `punctuated_word`.", default=False),
    Param("smart_format", "boolean", "Formatted transcript (implies `punctuate`).", default=False),
)
LIVE_PARAM_NAMES = frozenset(p.name for p in LIVE_PARAMS)


def live_values(query: MultiMapping[str]) -> dict[str, Any]:
    """Validated live parameters; others (Deepgram's `model`, `tier`...) are accepted and ignored,
    so Deepgram's SDKs connect unchanged."""
    return parse_params(LIVE_PARAMS, [(k, v) for k, v in query.items() if k in LIVE_PARAM_NAMES])
