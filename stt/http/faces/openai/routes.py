"""OpenAI-compatible face: POST /v1/audio/transcriptions, POST /v1/audio/translations, GET /v1/models.

Multipart requests and responses as OpenAI's audio API has them, so the official SDKs work when pointed at
this server; errors in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web

from stt.errors import ModelNotFound
from stt.http import apidoc as doc
from stt.http import formats, service
from stt.http.apidoc import AUTH_ERRORS, JSON, STR
from stt.http.bodies import read_upload
from stt.http.faces.openai.params import OPENAI_FIELDS, OPENAI_TRANSLATION_FIELDS, openai_request
from stt.http.faces.openai.render import openai_diarized_json, verbose_json
from stt.http.keys import ENGINE, SETTINGS, STARTED_AT
from stt.http.params import Param, check_model_support, request_pairs

ALIAS = "whisper-1"  # the id OpenAI clients send by default
OWNER = "stt-server"
routes = web.RouteTableDef()


def _audio_operation(summary: str, path: str, operation_id: str, fields: Iterable[Param],
                     answer: str) -> dict[str, Any]:
    """OpenAI's two audio routes: the same multipart form and answers, different fields."""
    return doc.op("openai", f"{summary} (OpenAI-compatible)", f"As OpenAI's `POST /v1/audio/{path}`.",
                  operationId=operation_id,
                  requestBody={"required": True, "content": {"multipart/form-data": {
                      "schema": doc.form(fields, "The audio file")}}},
                  responses=doc.transcript_responses(["OpenAITranscription", "OpenAIVerboseTranscription"],
                                                     "OpenAIError", answer))


@routes.post("/v1/audio/transcriptions")
@doc.describe(_audio_operation("Transcribe", "transcriptions", "createTranscription", OPENAI_FIELDS,
                               "The transcription"))
async def transcriptions(request: web.Request) -> web.Response:
    return await _audio(request, "transcribe")


@routes.post("/v1/audio/translations")
@doc.describe(_audio_operation("Translate to English", "translations", "createTranslation",
                               OPENAI_TRANSLATION_FIELDS, "The English translation"))
async def translations(request: web.Request) -> web.Response:
    return await _audio(request, "translate")


async def _audio(request: web.Request, task: str) -> web.Response:
    upload = await read_upload(request)
    parsed = openai_request(request_pairs(request.query, upload.items), task, request.app[SETTINGS].asr.beam_size)
    engine = request.app[ENGINE]
    check_model_support(parsed.options, engine.multilingual, engine.model_name)
    audio = await service.decode(request, upload.audio)
    transcript = await service.transcribe(request, audio, parsed.options, parsed.diarize)
    fmt = parsed.response_format
    if fmt == "diarized_json":
        return web.json_response(openai_diarized_json(transcript))
    if fmt == "json":
        body: dict[str, Any] = {"text": transcript.text}
        if task == "transcribe":
            body["usage"] = {"type": "duration", "seconds": round(transcript.duration, 3)}
        return web.json_response(body)
    if fmt == "verbose_json":
        return web.json_response(verbose_json(
            transcript, task, segments="segment" in parsed.granularities, words="word" in parsed.granularities))
    rendered = formats.render_text(fmt, transcript)
    return web.Response(text=rendered.body, content_type=rendered.content_type, charset="utf-8")


def _model_ids(request: web.Request) -> list[str]:
    name = request.app[ENGINE].model_name
    return [ALIAS] if name == ALIAS else [ALIAS, name]


def _model(request: web.Request, model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": int(request.app[STARTED_AT]), "owned_by": OWNER}


@routes.get("/v1/models")
@doc.describe(doc.op("openai", "List models (OpenAI-compatible)", "The ids this server answers to.",
                     operationId="listModels",
                     responses={"200": {"description": "Models", "content": {JSON: {
                         "schema": doc.ref("OpenAIModelList")}}}, **doc.errors("OpenAIError", AUTH_ERRORS)}))
async def models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [_model(request, m) for m in _model_ids(request)]})


@routes.get("/v1/models/{model}")
@doc.describe(doc.op(
    "openai", "Retrieve a model (OpenAI-compatible)", "One of the ids of `GET /v1/models`.",
    operationId="retrieveModel", parameters=[{"name": "model", "in": "path", "required": True, "schema": STR}],
    responses={"200": {"description": "The model", "content": {JSON: {"schema": doc.ref("OpenAIModel")}}},
               "404": {"description": "No such model", "content": {JSON: {"schema": doc.ref("OpenAIError")}}},
               **doc.errors("OpenAIError", AUTH_ERRORS)}))
async def model(request: web.Request) -> web.Response:
    model_id = request.match_info["model"]
    if model_id not in _model_ids(request):
        raise ModelNotFound(f"The model '{model_id}' does not exist", param="model")
    return web.json_response(_model(request, model_id))
