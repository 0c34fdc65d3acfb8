"""The native API: GET /ping, POST /stt (raw body or multipart ``file``, options), POST /detect-language."""

from __future__ import annotations

import time

from aiohttp import web

from stt.http import apidoc as doc
from stt.http import service
from stt.http.answers import json_answer, text_answer
from stt.http.apidoc import AUDIO_ERRORS, AUTH_ERRORS, JSON
from stt.http.bodies import read_upload
from stt.http.faces.native.params import DETECT_PARAMS, STT_PARAMS, stt_request
from stt.http.faces.native.render import languages_json, native_json, native_verbose_json
from stt.http.keys import SETTINGS
from stt.http.params import check_model_support, parse_params, request_pairs

routes = web.RouteTableDef()


@routes.get("/ping")
@doc.describe(doc.op("native", "Liveness check", "Answers while the model works.", operationId="ping",
                     responses={"200": {"description": "pong", "content": {JSON: {"schema": doc.obj(
                         ("text", "status"), text={"const": "pong"}, status={"const": "success"})}}},
                         **doc.errors("Error", AUTH_ERRORS)}))
async def ping(request: web.Request) -> web.Response:
    return web.json_response({"text": "pong", "status": "success"})


@routes.post("/stt")
@doc.describe(doc.op(
    "native", "Transcribe audio",
    "Send the audio as the raw body (`curl --data-binary @a.wav`) or as the multipart field `file`. "
    "Options go in the query string or as multipart fields (not both for the same option).",
    operationId="stt", parameters=doc.query(STT_PARAMS), requestBody=doc.audio_body(STT_PARAMS),
    responses=doc.transcript_responses(["Transcript", "VerboseTranscript"], "Error",
                                       "The transcript in the `output` format")))
async def stt(request: web.Request) -> web.Response:
    started = time.monotonic()
    upload = await read_upload(request)
    # Options are checked before the audio is decoded or queued: a typo costs no inference, only a 400.
    parsed = stt_request(request_pairs(request.query, upload.items), request.app[SETTINGS].asr.beam_size)
    async with service.model(request, parsed.model) as model:
        check_model_support(parsed.options, model.engine.multilingual, model.engine.model_name)
        audio = await service.decode(request, upload.audio)
        transcript = await service.transcribe(request, audio, parsed.options, parsed.diarize)
    proc = service.elapsed_since(started)
    if parsed.output == "json":
        return await json_answer(lambda: native_json(transcript, proc))
    if parsed.output == "verbose_json":
        return await json_answer(lambda: native_verbose_json(transcript, parsed.options.task, proc,
                                                             words=parsed.options.word_timestamps))
    return await text_answer(parsed.output, transcript)


@routes.post("/detect-language")
@doc.describe(doc.op(
    "native", "Detect the spoken language", "The most likely language of the first 30 s and the top probabilities.",
    operationId="detectLanguage", parameters=doc.query(DETECT_PARAMS), requestBody=doc.audio_body(DETECT_PARAMS),
    responses={"200": {"description": "Languages, most likely first",
                       "content": {JSON: {"schema": doc.ref("Languages")}}},
               **doc.errors("Error", AUDIO_ERRORS)}))
async def detect_language(request: web.Request) -> web.Response:
    upload = await read_upload(request)
    values = parse_params(DETECT_PARAMS, request_pairs(request.query, upload.items))
    async with service.model(request, values["model"]):
        audio = await service.decode(request, upload.audio)
        probabilities = await service.detect_language(request, audio)
    return web.json_response(languages_json(probabilities, values["top"]))
