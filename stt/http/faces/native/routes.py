"""The native API: GET /ping, POST /stt (raw body or multipart ``file``, options), POST /detect-language."""

from __future__ import annotations

import time

from aiohttp import web

from stt.http import formats
from stt.http import service
from stt.http.keys import ENGINE, SETTINGS
from stt.http.params import DETECT_PARAMS, check_model_support, parse_params, request_pairs, stt_request
from stt.http.bodies import read_upload

routes = web.RouteTableDef()


@routes.get("/ping")
async def ping(request: web.Request) -> web.Response:
    return web.json_response({"text": "pong", "status": "success"})


@routes.post("/stt")
async def stt(request: web.Request) -> web.Response:
    started = time.monotonic()
    upload = await read_upload(request)
    # Options are checked before the audio is decoded or queued: a typo costs no inference, only a 400.
    parsed = stt_request(request_pairs(request.query, upload.items), request.app[SETTINGS].asr.beam_size)
    engine = request.app[ENGINE]
    check_model_support(parsed.options, engine.multilingual, engine.model_name)
    audio = await service.decode(request, upload.audio)
    transcript = await service.transcribe(request, audio, parsed.options, parsed.diarize)
    proc = service.elapsed_since(started)
    if parsed.output == "json":
        return web.json_response(formats.native_json(transcript, proc))
    if parsed.output == "verbose_json":
        return web.json_response(formats.native_verbose_json(transcript, parsed.options.task, proc,
                                                             words=parsed.options.word_timestamps))
    rendered = formats.render_text(parsed.output, transcript)
    return web.Response(text=rendered.body, content_type=rendered.content_type, charset="utf-8")


@routes.post("/detect-language")
async def detect_language(request: web.Request) -> web.Response:
    upload = await read_upload(request)
    top = parse_params(DETECT_PARAMS, request_pairs(request.query, upload.items))["top"]
    audio = await service.decode(request, upload.audio)
    probabilities = await service.detect_language(request, audio)
    return web.json_response(formats.languages_json(probabilities, top))


def setup(app: web.Application) -> None:
    app.add_routes(routes)
