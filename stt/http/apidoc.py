"""OpenAPI pieces for the route modules: ``describe`` attaches an operation to a handler, next to its route,
and helpers build operations from the parameter tables the validator uses (``stt/http/openapi.py`` collects
them into the document). Response schemas mirror the renderers; a schemathesis run in the tests checks that
real responses match them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from stt.http.params import Param

AUDIO_TYPES = ("application/octet-stream", "audio/wav", "audio/flac", "audio/mpeg", "audio/ogg", "audio/webm")
TEXT_FORMATS = {"text/plain": "text", "application/x-subrip": "srt", "text/vtt": "vtt"}
JSON = "application/json"


def obj(required: Iterable[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": props}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


NUM, INT, STR = {"type": "number"}, {"type": "integer"}, {"type": "string"}
WORD = obj(("word", "start", "end", "probability"), word=STR, start=NUM, end=NUM, probability=NUM)
# avg_logprob, compression_ratio, no_speech_prob: the decoder's scores, left out where unknown.
SEGMENT = obj(("id", "seek", "start", "end", "text", "tokens", "temperature"),
               id=INT, seek=INT, start=NUM, end=NUM, text=STR, tokens={"type": "array", "items": INT},
               temperature=NUM, avg_logprob=NUM, compression_ratio=NUM, no_speech_prob=NUM,
               words={"type": "array", "items": ref("Word")})
USAGE = obj(("type", "seconds"), type={"const": "duration"}, seconds=NUM)
NATIVE = obj(("text", "proc_duration", "status", "language", "duration"), text=STR, proc_duration=NUM,
              status={"const": "success"}, language=STR, duration=NUM)
NATIVE_VERBOSE = {"allOf": [ref("Transcript"), obj(
    ("task", "segments", "language_probability"), task={"enum": ["transcribe", "translate"]},
    language_probability=NUM, segments={"type": "array", "items": ref("Segment")},
    words={"type": "array", "items": ref("Word")})]}
LANGUAGES = obj(("status", "language", "probability", "languages"), status={"const": "success"}, language=STR,
                 probability=NUM, languages={"type": "array", "items": obj(
                     ("language", "probability"), language=STR, probability=NUM)})
NATIVE_ERROR = obj(("status", "message"), status={"const": "failed"}, message=STR, code=STR, param=STR)
OPENAI_JSON = obj(("text",), text=STR, usage=ref("Usage"))
OPENAI_VERBOSE = obj(("task", "language", "duration", "text"), task={"enum": ["transcribe", "translate"]},
                      language=STR, duration=NUM, text=STR, usage=ref("Usage"),
                      segments={"type": "array", "items": ref("Segment")},
                      words={"type": "array", "items": ref("Word")})
OPENAI_MODEL = obj(("id", "object", "created", "owned_by"), id=STR, object={"const": "model"}, created=INT,
                    owned_by=STR, loaded={"type": "boolean", "description": "In memory now (else loaded on first use)"},
                    default={"type": "boolean", "description": "Served when a request names no model of ours"})
OPENAI_MODELS = obj(("object", "data"), object={"const": "list"},
                     data={"type": "array", "items": ref("OpenAIModel")})
OPENAI_ERROR = obj(("error",), error=obj(("message", "type", "param", "code"), message=STR, type=STR,
                                           param={"type": ["string", "null"]}, code={"type": ["string", "null"]}))
DG_WORD = obj(("word", "start", "end", "confidence", "punctuated_word"), word=STR, start=NUM, end=NUM,
               confidence=NUM, punctuated_word=STR)
DG_RESPONSE = obj(("metadata", "results"), metadata=obj(
    ("request_id", "sha256", "created", "duration", "channels", "models", "model_info"),
    transaction_key=STR, request_id={"type": "string", "format": "uuid"}, sha256=STR,
    created={"type": "string", "format": "date-time"}, duration=NUM, channels=INT,
    models={"type": "array", "items": STR}, model_info={"type": "object"}),
    results=obj(("channels",), channels={"type": "array", "minItems": 1, "items": obj(
        ("alternatives",), detected_language=STR, language_confidence=NUM,
        alternatives={"type": "array", "minItems": 1, "items": obj(
            ("transcript", "confidence", "words"), transcript=STR, confidence=NUM,
            words={"type": "array", "items": ref("DeepgramWord")})})}))
DG_ERROR = obj(("err_code", "err_msg", "request_id"), err_code=STR, err_msg=STR,
                request_id={"type": "string", "format": "uuid"})

NULLABLE_NUM = {"type": ["number", "null"]}
JOB = obj(("id", "status", "created_at", "progress", "options", "face"), id=STR,
          status={"enum": ["queued", "processing", "completed", "failed", "cancelled"]},
          created_at=NUM, started_at=NULLABLE_NUM, finished_at=NULLABLE_NUM,
          progress=obj(("done_seconds", "total_seconds"), done_seconds=NUM, total_seconds=NULLABLE_NUM),
          options={"type": "object"}, face={"enum": ["native", "deepgram"]}, result_url=STR,
          error=obj(("message",), message=STR, code={"type": ["string", "null"]}),
          callback=obj(("url", "method", "state", "attempts"), url=STR, method=STR,
                       state={"enum": ["waiting", "pending", "delivered", "failed"]},
                       attempts={"type": "array", "items": obj(("at", "status"), at=NUM,
                                                                status={"type": ["integer", "null"]},
                                                                error={"type": ["string", "null"]})}))
JOB_LIST = obj(("jobs", "next_before"), jobs={"type": "array", "items": ref("Job")}, next_before=NULLABLE_NUM)

SCHEMAS = {"Word": WORD, "Segment": SEGMENT, "Usage": USAGE, "Transcript": NATIVE,
           "VerboseTranscript": NATIVE_VERBOSE, "Languages": LANGUAGES, "Error": NATIVE_ERROR,
           "OpenAITranscription": OPENAI_JSON, "OpenAIVerboseTranscription": OPENAI_VERBOSE,
           "OpenAIModel": OPENAI_MODEL, "OpenAIModelList": OPENAI_MODELS, "OpenAIError": OPENAI_ERROR,
           "DeepgramWord": DG_WORD, "DeepgramResponse": DG_RESPONSE, "DeepgramError": DG_ERROR,
           "Job": JOB, "JobList": JOB_LIST}

ERROR_TEXT = {400: "Invalid parameter or undecodable audio", 401: "Missing Authorization header",
              403: "Unknown token or scheme", 413: "Body or audio over the limit",
              429: "Too many failed authentication attempts", 500: "Engine failure",
              503: "Queue full or timed out (see Retry-After)"}


def query(params: Iterable[Param]) -> list[dict[str, Any]]:
    return [{"name": p.name, "in": "query", "required": p.required, "description": describe_param(p),
             "schema": p.schema()} for p in params]


def describe_param(p: Param) -> str:
    return p.description + (" (ignored)" if p.ignored and "ignored" not in p.description.lower() else "")


def form(params: Iterable[Param], file_description: str) -> dict[str, Any]:
    props: dict[str, Any] = {"file": {"type": "string", "format": "binary", "description": file_description}}
    for p in params:
        schema = {**p.schema(), "description": describe_param(p)}
        props[p.name] = ({"type": "array", "items": p.schema(), "description": describe_param(p)} if p.repeated
                         else schema)
    required = ["file", *(p.name for p in params if p.required)]
    return {"type": "object", "required": required, "properties": props}


def audio_body(form_params: Iterable[Param] | None, raw: bool = True) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if raw:
        content.update({t: {"schema": {"type": "string", "format": "binary"}} for t in AUDIO_TYPES})
    if form_params is not None:
        content["multipart/form-data"] = {"schema": form(form_params, "The audio file")}
    return {"required": True, "description": "The audio: WAV, FLAC, OGG/Vorbis/Opus, MP3, WebM, M4A...",
            "content": content}


def errors(schema: str, statuses: Iterable[int]) -> dict[str, Any]:
    return {str(s): {"description": ERROR_TEXT[s], "content": {JSON: {"schema": ref(schema)}}} for s in statuses}


AUDIO_ERRORS = (400, 401, 403, 413, 429, 500, 503)
AUTH_ERRORS = (401, 403, 429)


def transcript_responses(json_schemas: list[str], error_schema: str, description: str) -> dict[str, Any]:
    # anyOf, not oneOf: a verbose answer is also a valid plain one.
    content: dict[str, Any] = {JSON: {"schema": {"anyOf": [ref(s) for s in json_schemas]}}}
    content.update({t: {"schema": STR} for t in TEXT_FORMATS})
    return {"200": {"description": description, "content": content}, **errors(error_schema, AUDIO_ERRORS)}


def op(tag: str, summary: str, description: str, **rest: Any) -> dict[str, Any]:
    return {"tags": [tag], "summary": summary, "description": description, **rest}


F = TypeVar("F")
_OPERATION = "__openapi__"


def describe(operation: dict[str, Any] | None = None, *,
             per_path: dict[str, dict[str, Any]] | None = None) -> Callable[[F], F]:
    """Attach the OpenAPI operation of a handler (``per_path``: one per path, for a handler on several)."""

    def mark(handler: F) -> F:
        setattr(handler, _OPERATION, (operation, per_path or {}))
        return handler

    return mark


def operation_of(handler: Any, path: str) -> dict[str, Any] | None:
    """The operation ``describe`` attached for this path (None: undocumented)."""
    found = getattr(handler, _OPERATION, None)
    if found is None:
        return None
    operation, per_path = found
    return per_path.get(path, operation)
