"""Deepgram's parameters: pre-recorded POST /v1/listen, and the live WebSocket GET /listen and /v1/listen."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable
from typing import Any

from multidict import MultiMapping

from stt.audio import MAX_SOURCE_RATE, MIN_SOURCE_RATE
from stt.diarization.types import DiarizeOptions
from stt.engines.base import TranscribeOptions
from stt.errors import BadRequest, UnknownModel
from stt.jobs.webhooks import URL_MAX
from stt.http.params import (FALSE, PROMPT_MAX_CHARS, TRUE, Param, bcp47_language, diarize_options,
                             model_param, parse_params)

MULTICHANNEL_MAX = 8  # channels transcribed one by one: each costs a full transcription
# Deepgram's model families (`nova-3`, `nova-2-meeting`, `enhanced`, `base`, `whisper-large`...): a client
# written for Deepgram sends them; they mean the default model.
DEEPGRAM_FAMILIES = ("nova-3", "nova-2", "nova", "enhanced", "base", "whisper")
MODEL = model_param("A model of the config's `asr.models` (listed by `GET /v1/models`; loaded on first use). "
                    "Deepgram's own model names (`nova-3`, `nova-2-general`, `enhanced`, `base`, `whisper-large`...) "
                    "mean the server's default model, unless the config names a model so. Any other is a 400.")


def deepgram_model(value: str | None, configured: Collection[str]) -> str | None:
    """Deepgram's ``model`` -> the configured model to use (None: the default); a clear 400 for others."""
    if not value or value in configured:
        return value or None
    if any(value == family or value.startswith(family + "-") for family in DEEPGRAM_FAMILIES):
        return None
    shown = value if len(value) <= 40 else value[:40] + "..."
    raise UnknownModel(f"model: unknown model {shown!r}: use one of this server's ({', '.join(configured)}) "
                       "or a Deepgram model name (nova-3, nova-2, enhanced, base, whisper) for the default",
                       param="model")

# Deepgram's asynchronous mode: the request runs as a job (the jobs face, stt/http/faces/jobs/deepgram.py).
DEEPGRAM_CALLBACK_PARAMS: tuple[Param, ...] = (
    Param("callback", "string", "Answer at once with `{\"request_id\"}` and deliver the response body to this "
          "URL when done (signed; its host must be in `jobs.callback_allowed_hosts`).", max_length=URL_MAX),
    Param("callback_method", "string", "`post` (default) or `put`.", default="post", enum=("post", "put")),
)

NUMERALS = Param("numerals", "boolean", "Spelled numbers as digits (\"nine hundred\" -> \"900\") in the "
                 "transcript and its words, in en, fr, es, pt, de, nl, da, it; isolated small numbers stay words.",
                 default=False)

DEEPGRAM_PARAMS: tuple[Param, ...] = (
    Param("language", "string", "BCP-47 tag (`en`, `en-US`, `de`...); its primary subtag must be a Whisper "
          "language. Default `en`, as Deepgram's.", default="en", max_length=35),
    Param("detect_language", "string", "`true`: detect the spoken language (overrides `language`). Repeated "
          "with BCP-47 tags (`detect_language=en&detect_language=de`): detect it among those only.",
          max_length=35, repeated=True),
    Param("punctuate", "boolean", "Punctuation and capitals in `transcript`.", default=False),
    Param("smart_format", "boolean", "Formatted transcript (implies `punctuate` and `numerals`).", default=False),
    MODEL,
    Param("tag", "string", "Accepted for compatibility; ignored.", max_length=200, repeated=True, ignored=True),
    Param("mip_opt_out", "boolean", "Accepted for compatibility; nothing is ever kept.", ignored=True),
    NUMERALS,
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
    model: str | None = None
    numerals: bool = False


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
                           diarize_options(v["diarize"]), v["utterances"], v["paragraphs"], v["multichannel"],
                           v["model"], v["numerals"] or v["smart_format"])


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
    Param("smart_format", "boolean", "Formatted transcript (implies `punctuate` and `numerals`).", default=False),
    NUMERALS,
    MODEL,
)
LIVE_PARAM_NAMES = frozenset(p.name for p in LIVE_PARAMS)


def live_values(query: MultiMapping[str]) -> dict[str, Any]:
    """Validated live parameters; others (Deepgram's `model`, `tier`...) are accepted and ignored,
    so Deepgram's SDKs connect unchanged."""
    return parse_params(LIVE_PARAMS, [(k, v) for k, v in query.items() if k in LIVE_PARAM_NAMES])
