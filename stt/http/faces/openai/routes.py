"""OpenAI-compatible face: POST /v1/audio/transcriptions, POST /v1/audio/translations, GET /v1/models.

Multipart requests and responses as OpenAI's audio API has them, so the official SDKs work when pointed at
this server; errors in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web

from stt.engines.base import Transcript
from stt.errors import ModelNotFound
from stt.http import apidoc as doc
from stt.http import service
from stt.http.answers import json_answer, text_answer
from stt.http.apidoc import AUTH_ERRORS, JSON, STR
from stt.http.bodies import read_upload
from stt.http.faces.openai.params import (ALIAS, OPENAI_FIELDS, OPENAI_TRANSLATION_FIELDS, openai_model,
                                         openai_request)
from stt.http.faces.openai.events import stream_response
from stt.http.faces.openai.render import openai_diarized_json, verbose_json, word_logprobs
from stt.http.keys import MODELS, SETTINGS, STARTED_AT
from stt.http.params import Param, check_model_support, request_pairs

SSE = "text/event-stream"
OWNER = "stt-server"
routes = web.RouteTableDef()


def _audio_operation(summary: str, path: str, operation_id: str, fields: Iterable[Param],
                     answer: str) -> dict[str, Any]:
    """OpenAI's two audio routes: the same multipart form and answers, different fields (and only
    transcriptions stream)."""
    responses = doc.transcript_responses(["OpenAITranscription", "OpenAIVerboseTranscription"], "OpenAIError",
                                         answer)
    responses["404"] = {"description": "`model_not_found`: no such model (see `GET /v1/models`)",
                        "content": {JSON: {"schema": doc.ref("OpenAIError")}}}
    if any(p.name == "stream" for p in fields):
        responses["200"]["content"][SSE] = {"schema": {**STR, "description": (
            "With `stream=true`: Server-Sent Events, one `data:` line of JSON each: `transcript.text.delta` "
            "{delta, logprobs?}, `transcript.text.segment` {id, start, end, text, speaker} (diarized_json), "
            "`transcript.text.done` {text, usage, logprobs?}, or `error` {error} when it fails midway.")}}
    return doc.op("openai", f"{summary} (OpenAI-compatible)", f"As OpenAI's `POST /v1/audio/{path}`.",
                  operationId=operation_id,
                  requestBody={"required": True, "content": {"multipart/form-data": {
                      "schema": doc.form(fields, "The audio file")}}},
                  responses=responses)


@routes.post("/v1/audio/transcriptions")
@doc.describe(_audio_operation("Transcribe", "transcriptions", "createTranscription", OPENAI_FIELDS,
                               "The transcription"))
async def transcriptions(request: web.Request) -> web.StreamResponse:
    return await _audio(request, "transcribe")


@routes.post("/v1/audio/translations")
@doc.describe(_audio_operation("Translate to English", "translations", "createTranslation",
                               OPENAI_TRANSLATION_FIELDS, "The English translation"))
async def translations(request: web.Request) -> web.StreamResponse:
    return await _audio(request, "translate")


async def _audio(request: web.Request, task: str) -> web.StreamResponse:
    upload = await read_upload(request)
    parsed = openai_request(request_pairs(request.query, upload.items), task, request.app[SETTINGS].asr.beam_size)
    async with service.model(request, openai_model(parsed.model, request.app[MODELS].sources)) as model:
        check_model_support(parsed.options, model.engine.multilingual, model.engine.model_name)
        audio = await service.decode(request, upload.audio)
        if parsed.stream:
            # The model stays leased until the last event is sent.
            return await stream_response(
                request, service.stream(request, audio, parsed.options, parsed.diarize, parsed.chunking),
                diarized=parsed.diarize is not None, logprobs=parsed.logprobs)
        transcript = await service.transcribe(request, audio, parsed.options, parsed.diarize, parsed.chunking)
    fmt = parsed.response_format
    if fmt == "diarized_json":
        return await json_answer(lambda: openai_diarized_json(transcript))
    if fmt == "json":
        return await json_answer(lambda: _json(transcript, task, parsed.logprobs))
    if fmt == "verbose_json":
        return await json_answer(lambda: verbose_json(
            transcript, task, segments="segment" in parsed.granularities, words="word" in parsed.granularities))
    return await text_answer(fmt, transcript)


def _json(transcript: Transcript, task: str, logprobs: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"text": transcript.text}
    if task == "transcribe":
        body["usage"] = {"type": "duration", "seconds": round(transcript.duration, 3)}
    if logprobs:
        body["logprobs"] = word_logprobs(w for s in transcript.segments for w in s.words)
    return body


def _models(request: web.Request) -> dict[str, dict[str, Any]]:
    """``whisper-1`` (the default model) and every configured model, with whether it is in memory now."""
    states = request.app[MODELS].states()
    default = next(s for s in states if s.default)
    listed = {ALIAS: _model(request, ALIAS, default.loaded, True)}
    for state in states:
        listed.setdefault(state.name, _model(request, state.name, state.loaded, state.default))
    return listed


def _model(request: web.Request, model_id: str, loaded: bool, default: bool) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": int(request.app[STARTED_AT]), "owned_by": OWNER,
            "loaded": loaded, "default": default}


@routes.get("/v1/models")
@doc.describe(doc.op("openai", "List models (OpenAI-compatible)",
                     "`whisper-1` (the default model) and every model of the config's `asr.models`, with "
                     "`loaded` (in memory now) and `default`. Every face takes these names as `model`.",
                     operationId="listModels",
                     responses={"200": {"description": "Models", "content": {JSON: {
                         "schema": doc.ref("OpenAIModelList")}}}, **doc.errors("OpenAIError", AUTH_ERRORS)}))
async def models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": list(_models(request).values())})


@routes.get("/v1/models/{model}")
@doc.describe(doc.op(
    "openai", "Retrieve a model (OpenAI-compatible)", "One of the ids of `GET /v1/models`.",
    operationId="retrieveModel", parameters=[{"name": "model", "in": "path", "required": True, "schema": STR}],
    responses={"200": {"description": "The model", "content": {JSON: {"schema": doc.ref("OpenAIModel")}}},
               "404": {"description": "No such model", "content": {JSON: {"schema": doc.ref("OpenAIError")}}},
               **doc.errors("OpenAIError", AUTH_ERRORS)}))
async def model(request: web.Request) -> web.Response:
    model_id = request.match_info["model"]
    listed = _models(request)
    if model_id not in listed:
        raise ModelNotFound(f"The model '{model_id[:40]}' does not exist", param="model")
    return web.json_response(listed[model_id])
