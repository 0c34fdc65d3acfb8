"""OpenAI-compatible face: POST /v1/audio/transcriptions, POST /v1/audio/translations, GET /v1/models.

Multipart requests and responses as OpenAI's audio API has them, so the official SDKs work when pointed at
this server; errors in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from stt.http import formats
from stt.http.faces.deepgram import render as speaker_formats
from stt.http import service
from stt.errors import ApiError, ErrorInfo, register_error_renderer
from stt.http.keys import ENGINE, SETTINGS, STARTED_AT
from stt.http.params import check_model_support, openai_request, request_pairs
from stt.http.bodies import read_upload

PREFIXES = ("/v1/audio", "/v1/models")
ALIAS = "whisper-1"  # the id OpenAI clients send by default
OWNER = "stt-server"
routes = web.RouteTableDef()


class ModelNotFound(ApiError):
    status, code = 404, "model_not_found"


@routes.post("/v1/audio/transcriptions")
async def transcriptions(request: web.Request) -> web.Response:
    return await _audio(request, "transcribe")


@routes.post("/v1/audio/translations")
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
        return web.json_response(speaker_formats.openai_diarized_json(transcript))
    if fmt == "json":
        body: dict[str, Any] = {"text": transcript.text}
        if task == "transcribe":
            body["usage"] = {"type": "duration", "seconds": round(transcript.duration, 3)}
        return web.json_response(body)
    if fmt == "verbose_json":
        return web.json_response(formats.verbose_json(
            transcript, task, segments="segment" in parsed.granularities, words="word" in parsed.granularities))
    rendered = formats.render_text(fmt, transcript)
    return web.Response(text=rendered.body, content_type=rendered.content_type, charset="utf-8")


def _model_ids(request: web.Request) -> list[str]:
    name = request.app[ENGINE].model_name
    return [ALIAS] if name == ALIAS else [ALIAS, name]


def _model(request: web.Request, model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": int(request.app[STARTED_AT]), "owned_by": OWNER}


@routes.get("/v1/models")
async def models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [_model(request, m) for m in _model_ids(request)]})


@routes.get("/v1/models/{model}")
async def model(request: web.Request) -> web.Response:
    model_id = request.match_info["model"]
    if model_id not in _model_ids(request):
        raise ModelNotFound(f"The model '{model_id}' does not exist", param="model")
    return web.json_response(_model(request, model_id))


def _error_type(status: int) -> str:
    if status in (401, 403):
        return "authentication_error" if status == 401 else "permission_error"
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def openai_error(request: web.Request, info: ErrorInfo) -> web.Response:
    code = "invalid_api_key" if info.status in (401, 403) else info.code
    body = {"error": {"message": info.message, "type": _error_type(info.status), "param": info.param,
                      "code": code}}
    return web.json_response(body, status=info.status, headers=info.headers)


def setup(app: web.Application) -> None:
    app.add_routes(routes)
    for prefix in PREFIXES:
        register_error_renderer(app, prefix, openai_error)
