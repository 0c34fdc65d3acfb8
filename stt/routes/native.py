"""The native API: GET /ping, POST /stt (raw body or multipart ``file``)."""

from __future__ import annotations

import time

from aiohttp import web

from stt import service
from stt.engines.base import TranscribeOptions
from stt.keys import SETTINGS
from stt.uploads import read_upload

routes = web.RouteTableDef()


@routes.get("/ping")
async def ping(request: web.Request) -> web.Response:
    return web.json_response({"text": "pong", "status": "success"})


@routes.post("/stt")
async def stt(request: web.Request) -> web.Response:
    started = time.monotonic()
    upload = await read_upload(request)
    audio = await service.decode(request, upload.audio)
    options = TranscribeOptions(beam_size=request.app[SETTINGS].asr.beam_size)
    transcript = await service.transcribe(request, audio, options)
    return web.json_response({
        "text": transcript.text,
        "proc_duration": service.elapsed_since(started),
        "status": "success",
        "language": transcript.language,
        "duration": round(transcript.duration, 3),
    })


def setup(app: web.Application) -> None:
    app.add_routes(routes)
