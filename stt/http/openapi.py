"""The OpenAPI 3.1 description of every HTTP endpoint, built from the option tables the validator uses.

``/openapi.json`` serves it and ``/docs`` renders it to HTML, so the parameters in the docs are by
construction the ones the server accepts. Response schemas mirror ``stt/formats.py``; a schemathesis run in
the tests checks that real responses match them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from stt.options import (DEEPGRAM_PARAMS, DETECT_PARAMS, LIVE_PARAMS, OPENAI_FIELDS, OPENAI_TRANSLATION_FIELDS,
                         STT_PARAMS, Param)

VERSION = "1.0.0"
AUDIO_TYPES = ("application/octet-stream", "audio/wav", "audio/flac", "audio/mpeg", "audio/ogg", "audio/webm")
TEXT_FORMATS = {"text/plain": "text", "application/x-subrip": "srt", "text/vtt": "vtt"}
JSON = "application/json"


def _obj(required: Iterable[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": props}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


NUM, INT, STR = {"type": "number"}, {"type": "integer"}, {"type": "string"}
WORD = _obj(("word", "start", "end", "probability"), word=STR, start=NUM, end=NUM, probability=NUM)
# avg_logprob, compression_ratio, no_speech_prob: the decoder's scores, left out where unknown.
SEGMENT = _obj(("id", "seek", "start", "end", "text", "tokens", "temperature"),
               id=INT, seek=INT, start=NUM, end=NUM, text=STR, tokens={"type": "array", "items": INT},
               temperature=NUM, avg_logprob=NUM, compression_ratio=NUM, no_speech_prob=NUM,
               words={"type": "array", "items": _ref("Word")})
USAGE = _obj(("type", "seconds"), type={"const": "duration"}, seconds=NUM)
NATIVE = _obj(("text", "proc_duration", "status", "language", "duration"), text=STR, proc_duration=NUM,
              status={"const": "success"}, language=STR, duration=NUM)
NATIVE_VERBOSE = {"allOf": [_ref("Transcript"), _obj(
    ("task", "segments", "language_probability"), task={"enum": ["transcribe", "translate"]},
    language_probability=NUM, segments={"type": "array", "items": _ref("Segment")},
    words={"type": "array", "items": _ref("Word")})]}
LANGUAGES = _obj(("status", "language", "probability", "languages"), status={"const": "success"}, language=STR,
                 probability=NUM, languages={"type": "array", "items": _obj(
                     ("language", "probability"), language=STR, probability=NUM)})
NATIVE_ERROR = _obj(("status", "message"), status={"const": "failed"}, message=STR, code=STR, param=STR)
OPENAI_JSON = _obj(("text",), text=STR, usage=_ref("Usage"))
OPENAI_VERBOSE = _obj(("task", "language", "duration", "text"), task={"enum": ["transcribe", "translate"]},
                      language=STR, duration=NUM, text=STR, usage=_ref("Usage"),
                      segments={"type": "array", "items": _ref("Segment")},
                      words={"type": "array", "items": _ref("Word")})
OPENAI_MODEL = _obj(("id", "object", "created", "owned_by"), id=STR, object={"const": "model"}, created=INT,
                    owned_by=STR)
OPENAI_MODELS = _obj(("object", "data"), object={"const": "list"},
                     data={"type": "array", "items": _ref("OpenAIModel")})
OPENAI_ERROR = _obj(("error",), error=_obj(("message", "type", "param", "code"), message=STR, type=STR,
                                           param={"type": ["string", "null"]}, code={"type": ["string", "null"]}))
DG_WORD = _obj(("word", "start", "end", "confidence", "punctuated_word"), word=STR, start=NUM, end=NUM,
               confidence=NUM, punctuated_word=STR)
DG_RESPONSE = _obj(("metadata", "results"), metadata=_obj(
    ("request_id", "sha256", "created", "duration", "channels", "models", "model_info"),
    transaction_key=STR, request_id={"type": "string", "format": "uuid"}, sha256=STR,
    created={"type": "string", "format": "date-time"}, duration=NUM, channels=INT,
    models={"type": "array", "items": STR}, model_info={"type": "object"}),
    results=_obj(("channels",), channels={"type": "array", "minItems": 1, "items": _obj(
        ("alternatives",), detected_language=STR, language_confidence=NUM,
        alternatives={"type": "array", "minItems": 1, "items": _obj(
            ("transcript", "confidence", "words"), transcript=STR, confidence=NUM,
            words={"type": "array", "items": _ref("DeepgramWord")})})}))
DG_ERROR = _obj(("err_code", "err_msg", "request_id"), err_code=STR, err_msg=STR,
                request_id={"type": "string", "format": "uuid"})

SCHEMAS = {"Word": WORD, "Segment": SEGMENT, "Usage": USAGE, "Transcript": NATIVE,
           "VerboseTranscript": NATIVE_VERBOSE, "Languages": LANGUAGES, "Error": NATIVE_ERROR,
           "OpenAITranscription": OPENAI_JSON, "OpenAIVerboseTranscription": OPENAI_VERBOSE,
           "OpenAIModel": OPENAI_MODEL, "OpenAIModelList": OPENAI_MODELS, "OpenAIError": OPENAI_ERROR,
           "DeepgramWord": DG_WORD, "DeepgramResponse": DG_RESPONSE, "DeepgramError": DG_ERROR}

ERROR_TEXT = {400: "Invalid parameter or undecodable audio", 401: "Missing Authorization header",
              403: "Unknown token or scheme", 413: "Body or audio over the limit",
              429: "Too many failed authentication attempts", 500: "Engine failure",
              503: "Queue full or timed out (see Retry-After)"}


def _query(params: Iterable[Param]) -> list[dict[str, Any]]:
    return [{"name": p.name, "in": "query", "required": p.required, "description": _describe(p),
             "schema": p.schema()} for p in params]


def _describe(p: Param) -> str:
    return p.description + (" (ignored)" if p.ignored and "ignored" not in p.description.lower() else "")


def _form(params: Iterable[Param], file_description: str) -> dict[str, Any]:
    props: dict[str, Any] = {"file": {"type": "string", "format": "binary", "description": file_description}}
    for p in params:
        schema = {**p.schema(), "description": _describe(p)}
        props[p.name] = {"type": "array", "items": p.schema(), "description": _describe(p)} if p.repeated else schema
    required = ["file", *(p.name for p in params if p.required)]
    return {"type": "object", "required": required, "properties": props}


def _audio_body(form_params: Iterable[Param] | None, raw: bool = True) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if raw:
        content.update({t: {"schema": {"type": "string", "format": "binary"}} for t in AUDIO_TYPES})
    if form_params is not None:
        content["multipart/form-data"] = {"schema": _form(form_params, "The audio file")}
    return {"required": True, "description": "The audio: WAV, FLAC, OGG/Vorbis/Opus, MP3, WebM, M4A...",
            "content": content}


def _errors(schema: str, statuses: Iterable[int]) -> dict[str, Any]:
    return {str(s): {"description": ERROR_TEXT[s], "content": {JSON: {"schema": _ref(schema)}}} for s in statuses}


AUDIO_ERRORS = (400, 401, 403, 413, 429, 500, 503)
AUTH_ERRORS = (401, 403, 429)


def _transcript_responses(json_schemas: list[str], error_schema: str, description: str) -> dict[str, Any]:
    # anyOf, not oneOf: a verbose answer is also a valid plain one.
    content: dict[str, Any] = {JSON: {"schema": {"anyOf": [_ref(s) for s in json_schemas]}}}
    content.update({t: {"schema": STR} for t in TEXT_FORMATS})
    return {"200": {"description": description, "content": content}, **_errors(error_schema, AUDIO_ERRORS)}


def _op(tag: str, summary: str, description: str, **rest: Any) -> dict[str, Any]:
    return {"tags": [tag], "summary": summary, "description": description, **rest}


def _live_op(operation_id: str, error_schema: str) -> dict[str, Any]:
    """A WebSocket upgrade: OpenAPI cannot describe the messages, so the description points to them."""
    return _op("live", "Live transcription over a WebSocket (Deepgram's live API)",
               "Upgrade with `Authorization: Token|Bearer <t>` or the subprotocol pair `[\"token\", \"<t>\"]`; "
               "send binary audio, `KeepAlive`, `Finalize`, `CloseStream`; receive `Results`, `SpeechStarted`, "
               "`UtteranceEnd` and `Metadata` (see the README's Live transcription section). Other Deepgram "
               "parameters are accepted and ignored. A plain GET without the upgrade is a 400.",
               operationId=operation_id, parameters=_query(LIVE_PARAMS),
               responses={"101": {"description": "Switching to the WebSocket protocol"},
                          **_errors(error_schema, (400, 401, 403, 429))})


def _openai_audio_op(summary: str, path: str, operation_id: str, fields: Iterable[Param],
                     answer: str) -> dict[str, Any]:
    """OpenAI's two audio routes: the same multipart form and answers, different fields."""
    return _op("openai", f"{summary} (OpenAI-compatible)", f"As OpenAI's `POST /v1/audio/{path}`.",
               operationId=operation_id,
               requestBody={"required": True, "content": {"multipart/form-data": {
                   "schema": _form(fields, "The audio file")}}},
               responses=_transcript_responses(["OpenAITranscription", "OpenAIVerboseTranscription"],
                                               "OpenAIError", answer))


def _paths() -> dict[str, Any]:
    deepgram_listen = _op(
        "deepgram", "Transcribe pre-recorded audio (Deepgram-compatible)",
        "As Deepgram's `POST /v1/listen` with the audio as the raw body. Booleans are case-insensitive.",
        operationId="listen", parameters=_query(DEEPGRAM_PARAMS), requestBody=_audio_body(None),
        responses={"200": {"description": "Deepgram's pre-recorded response",
                           "content": {JSON: {"schema": _ref("DeepgramResponse")}}},
                   **_errors("DeepgramError", AUDIO_ERRORS)})
    native_stt = _op(
        "native", "Transcribe audio",
        "Send the audio as the raw body (`curl --data-binary @a.wav`) or as the multipart field `file`. "
        "Options go in the query string or as multipart fields (not both for the same option).",
        operationId="stt", parameters=_query(STT_PARAMS), requestBody=_audio_body(STT_PARAMS),
        responses=_transcript_responses(["Transcript", "VerboseTranscript"], "Error",
                                        "The transcript in the `output` format"))
    detect = _op("native", "Detect the spoken language",
                 "The most likely language of the first 30 s and the top probabilities.",
                 operationId="detectLanguage", parameters=_query(DETECT_PARAMS), requestBody=_audio_body(DETECT_PARAMS),
                 responses={"200": {"description": "Languages, most likely first",
                                    "content": {JSON: {"schema": _ref("Languages")}}},
                            **_errors("Error", AUDIO_ERRORS)})
    return {
        "/ping": {"get": _op("native", "Liveness check", "Answers while the model works.", operationId="ping",
                             responses={"200": {"description": "pong", "content": {JSON: {"schema": _obj(
                                 ("text", "status"), text={"const": "pong"}, status={"const": "success"})}}},
                                 **_errors("Error", AUTH_ERRORS)})},
        "/health": {"get": _op("ops", "Health check (no token)", "Engine, model, queue and uptime.",
                               operationId="health", security=[],
                               responses={"200": {"description": "Healthy", "content": {JSON: {"schema": _obj(
                                   ("status",), status={"const": "ok"}, engine=STR, model=STR, queued=INT,
                                   running=INT, in_flight=INT, uptime_s=NUM)}}}})},
        "/ready": {"get": _op("ops", "Readiness check (no token)",
                              "503 while draining at shutdown or while the queue is full: send work elsewhere.",
                              operationId="ready", security=[],
                              responses={"200": {"description": "Ready", "content": {JSON: {"schema": _obj(
                                  ("status",), status={"const": "ready"})}}},
                                  "503": {"description": "Not ready", "content": {JSON: {"schema": _obj(
                                      ("status", "reasons"), status={"const": "unavailable"},
                                      reasons={"type": "array", "items": STR})}}}})},
        "/metrics": {"get": _op("ops", "Prometheus metrics",
                                "Prometheus' text exposition format (no token when the config sets `metrics_public`).",
                                operationId="metrics",
                                responses={"200": {"description": "Metrics", "content": {
                                    "text/plain": {"schema": STR}}}, **_errors("Error", AUTH_ERRORS)})},
        "/stt": {"post": native_stt},
        "/detect-language": {"post": detect},
        "/v1/audio/transcriptions": {"post": _openai_audio_op(
            "Transcribe", "transcriptions", "createTranscription", OPENAI_FIELDS, "The transcription")},
        "/v1/audio/translations": {"post": _openai_audio_op(
            "Translate to English", "translations", "createTranslation", OPENAI_TRANSLATION_FIELDS,
            "The English translation")},
        "/v1/models": {"get": _op("openai", "List models (OpenAI-compatible)", "The ids this server answers to.",
                                  operationId="listModels",
                                  responses={"200": {"description": "Models", "content": {JSON: {
                                      "schema": _ref("OpenAIModelList")}}}, **_errors("OpenAIError", AUTH_ERRORS)})},
        "/v1/models/{model}": {"get": _op(
            "openai", "Retrieve a model (OpenAI-compatible)", "One of the ids of `GET /v1/models`.",
            operationId="retrieveModel",
            parameters=[{"name": "model", "in": "path", "required": True, "schema": STR}],
            responses={"200": {"description": "The model", "content": {JSON: {"schema": _ref("OpenAIModel")}}},
                       "404": {"description": "No such model", "content": {JSON: {"schema": _ref("OpenAIError")}}},
                       **_errors("OpenAIError", AUTH_ERRORS)})},
        "/listen": {"get": _live_op("listenSeed", "Error")},
        "/v1/listen": {"post": deepgram_listen, "get": _live_op("listenLive", "DeepgramError")},
        "/": {"get": _op("page", "Browser page (no token)", "Live microphone transcription and an upload form; "
                         "the token is typed into the page.", operationId="page", security=[],
                         responses={"200": {"description": "HTML", "content": {"text/html": {"schema": STR}}}})},
        "/favicon.ico": {"get": _op("page", "No icon (no token)", "Answers 204 so browsers stop asking.",
                                    operationId="favicon", security=[],
                                    responses={"204": {"description": "No content"}})},
        "/web/{name}": {"get": _op(
            "page", "The page's scripts and style (no token)", "`app.js`, `capture-worklet.js`, `style.css`.",
            operationId="pageAsset", security=[],
            parameters=[{"name": "name", "in": "path", "required": True, "schema": STR}],
            responses={"200": {"description": "The file", "content": {
                "text/javascript": {"schema": STR}, "text/css": {"schema": STR}}},
                "404": {"description": "No such file", "content": {JSON: {"schema": _ref("Error")}}}})},
        "/openapi.json": {"get": _op("docs", "This OpenAPI document (no token)", "OpenAPI 3.1, JSON.",
                                     operationId="openapi", security=[],
                                     responses={"200": {"description": "The document",
                                                        "content": {JSON: {"schema": {"type": "object"}}}}})},
        "/docs": {"get": _op("docs", "API reference page (no token)", "This document rendered as HTML.",
                             operationId="docs", security=[],
                             responses={"200": {"description": "HTML", "content": {"text/html": {"schema": STR}}}})},
    }


@functools.cache
def build_spec() -> dict[str, Any]:
    """The whole document; cached because it only depends on code."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Whisper speech-to-text server", "version": VERSION,
                 "description": "Self-hosted Whisper: a native API, OpenAI- and Deepgram-compatible endpoints. "
                                "Every endpoint but `/health`, `/ready`, `/openapi.json` and `/docs` needs "
                                "`Authorization: Token <token>` (or `Bearer <token>`)."},
        "servers": [{"url": "/"}],
        "tags": [{"name": "native"}, {"name": "openai"}, {"name": "deepgram"}, {"name": "ops"}, {"name": "docs"},
                 {"name": "live"}, {"name": "page"}],
        "security": [{"token": []}],
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "Authorization",
                                          "description": "`Token <token>` or `Bearer <token>`"}},
        },
    }
