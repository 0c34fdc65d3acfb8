"""Deepgram-compatible pre-recorded face: POST /v1/listen with the raw audio body and Deepgram's query parameters.

Answers Deepgram's response shape (metadata + results.channels[0].alternatives[0] with words) and its error
shape ``{"err_code", "err_msg", "request_id"}``. Only POST is registered here: the live WebSocket
``GET /v1/listen`` belongs to the streaming face.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid

from aiohttp import web

from stt import formats
from stt.http import service
from stt.errors import BadRequest, ErrorInfo, register_error_renderer
from stt.http.keys import ENGINE, SETTINGS
from stt.options import MULTICHANNEL_MAX, check_model_support, deepgram_request, request_pairs
from stt.http.stats import request_stats
from stt.http.bodies import read_upload

PREFIX = "/v1/listen"
URL_BODY_MAX = 64 * 1024  # a JSON {"url": ...} body is small; larger bodies are audio and never parsed as JSON
DG_REQUEST_ID = "dg-request-id"
MINTED_ID = web.RequestKey("deepgram_request_id", str)
ERR_CODES = {400: "Bad Request", 401: "INVALID_AUTH", 403: "INSUFFICIENT_PERMISSIONS", 404: "Not Found",
             405: "Method Not Allowed", 413: "PAYLOAD_TOO_LARGE", 429: "TOO_MANY_REQUESTS",
             503: "SERVICE_UNAVAILABLE"}
routes = web.RouteTableDef()


def deepgram_request_id(request: web.Request) -> str:
    """Deepgram's request ids are UUIDs: reuse ours when it is one (the usual case), else mint one."""
    current = request_stats(request).request_id
    try:
        return str(uuid.UUID(current))
    except ValueError:
        if MINTED_ID not in request:
            request[MINTED_ID] = str(uuid.uuid4())
        return request[MINTED_ID]


@routes.post(PREFIX)
async def listen(request: web.Request) -> web.Response:
    if "callback" in request.query or "callback_method" in request.query:  # Deepgram's asynchronous mode: answered at once, delivered when done
        from stt.http.routes.jobs import deepgram_callback

        return await deepgram_callback(request, deepgram_request_id(request))
    upload = await read_upload(request)
    refuse_url_body(request.content_type, upload.audio)
    parsed = deepgram_request(request_pairs(request.query, upload.items), request.app[SETTINGS].asr.beam_size)
    engine = request.app[ENGINE]
    check_model_support(parsed.options, engine.multilingual, engine.model_name)
    # The upload's hash (Deepgram's metadata.sha256) is computed while it is decoded, not after.
    decoding = (service.decode_each_channel(request, upload.audio, MULTICHANNEL_MAX) if parsed.multichannel
                else service.decode(request, upload.audio))
    audio, digest = await asyncio.gather(decoding,
                                         asyncio.to_thread(lambda: hashlib.sha256(upload.audio).hexdigest()))
    # Multichannel: each channel is its own scheduler job, one after the other (a fair share of the workers).
    transcript = ([await service.transcribe(request, channel, parsed.options, parsed.diarize) for channel in audio]
                  if parsed.multichannel else await service.transcribe(request, audio, parsed.options, parsed.diarize))
    request_id = deepgram_request_id(request)
    body = formats.deepgram_json(transcript, request_id=request_id, sha256=digest, engine=engine.name,
                                 model=engine.model_name, punctuate=parsed.punctuate,
                                 detected=parsed.detect_language, diarize=parsed.diarize is not None,
                                 utterances=parsed.utterances, paragraphs=parsed.paragraphs)
    return web.json_response(body, headers={DG_REQUEST_ID: request_id})


def refuse_url_body(content_type: str, body: bytes) -> None:
    """Deepgram also takes {"url": "..."} and fetches the audio itself; this server never fetches anything,
    so say so instead of calling the JSON corrupt audio."""
    if len(body) > URL_BODY_MAX or not (content_type == "application/json" or body.lstrip()[:1] == b"{"):
        return
    try:
        parsed = json.loads(body)
    except ValueError:
        return
    if isinstance(parsed, dict) and "url" in parsed:
        raise BadRequest("Fetching audio from a URL is not supported by this server: send the audio bytes as "
                         "the request body", param="url")


def deepgram_error(request: web.Request, info: ErrorInfo) -> web.Response:
    request_id = deepgram_request_id(request)
    code = ERR_CODES.get(info.status, "INTERNAL_SERVER_ERROR" if info.status >= 500 else info.code)
    body = {"err_code": code, "err_msg": info.message, "request_id": request_id}
    return web.json_response(body, status=info.status, headers={**info.headers, DG_REQUEST_ID: request_id})


def setup(app: web.Application) -> None:
    app.add_routes(routes)
    register_error_renderer(app, PREFIX, deepgram_error)
