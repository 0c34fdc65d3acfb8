"""Deepgram-compatible pre-recorded face: POST /v1/listen with the raw audio body and Deepgram's query parameters.

Answers Deepgram's response shape (metadata + results.channels[0].alternatives[0] with words) and its error
shape ``{"err_code", "err_msg", "request_id"}`` (``errors.py``). Only POST is here: the live WebSocket
``GET /v1/listen`` is in ``live.py``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json

from aiohttp import web

from stt.errors import BadRequest
from stt.http import apidoc as doc
from stt.http import service
from stt.http.answers import json_answer
from stt.http.apidoc import AUDIO_ERRORS, JSON
from stt.http.bodies import read_upload
from stt.http.faces.deepgram.errors import DG_REQUEST_ID, deepgram_request_id
from stt.http.faces.deepgram.params import (DEEPGRAM_CALLBACK_PARAMS, DEEPGRAM_PARAMS, MULTICHANNEL_MAX,
                                            deepgram_model, deepgram_request)
from stt.http.faces.deepgram.render import deepgram_json
from stt.http.keys import DEEPGRAM_CALLBACK, MODELS, SETTINGS
from stt.http.params import check_model_support, request_pairs

PREFIX = "/v1/listen"
URL_BODY_MAX = 64 * 1024  # a JSON {"url": ...} body is small; larger bodies are audio and never parsed as JSON
routes = web.RouteTableDef()


@routes.post(PREFIX)
@doc.describe(doc.op(
    "deepgram", "Transcribe pre-recorded audio (Deepgram-compatible)",
    "As Deepgram's `POST /v1/listen` with the audio as the raw body. Booleans are case-insensitive. With "
    "`callback`: answers `{\"request_id\"}` at once and delivers the response body to the URL when done.",
    operationId="listen", parameters=doc.query((*DEEPGRAM_PARAMS, *DEEPGRAM_CALLBACK_PARAMS)),
    requestBody=doc.audio_body(None),
    responses={"200": {"description": "Deepgram's pre-recorded response (with `callback`: the request id)",
                       "content": {JSON: {"schema": {"anyOf": [doc.ref("DeepgramResponse"), doc.obj(
                           ("request_id",), request_id={"type": "string", "format": "uuid"})]}}}},
               **doc.errors("DeepgramError", AUDIO_ERRORS)}))
async def listen(request: web.Request) -> web.Response:
    if "callback" in request.query or "callback_method" in request.query:
        # Deepgram's asynchronous mode: answered at once, delivered later, as a job.
        return await request.app[DEEPGRAM_CALLBACK](request)
    upload = await read_upload(request)
    refuse_url_body(request.content_type, upload.audio)
    parsed = deepgram_request(request_pairs(request.query, upload.items), request.app[SETTINGS].asr.beam_size)
    async with service.model(request, deepgram_model(parsed.model, request.app[MODELS].sources)) as model:
        engine = model.engine
        check_model_support(parsed.options, engine.multilingual, engine.model_name)
        # The upload's hash (Deepgram's metadata.sha256) is computed while it is decoded, not after.
        decoding = (service.decode_each_channel(request, upload.audio, MULTICHANNEL_MAX) if parsed.multichannel
                    else service.decode(request, upload.audio))
        audio, digest = await asyncio.gather(decoding,
                                             asyncio.to_thread(lambda: hashlib.sha256(upload.audio).hexdigest()))
        # Multichannel: each channel is its own scheduler job, one after the other (a fair share of the workers).
        transcript = ([await service.transcribe(request, channel, parsed.options, parsed.diarize)
                       for channel in audio] if parsed.multichannel
                      else await service.transcribe(request, audio, parsed.options, parsed.diarize))
    request_id = deepgram_request_id(request)
    # Off the event loop: an hour's transcript is ~10k words to shape (and, with numerals, to parse) and serialise.
    return await json_answer(functools.partial(
        deepgram_json, transcript, request_id=request_id, sha256=digest, engine=engine.name,
        model=engine.model_name, punctuate=parsed.punctuate, detected=parsed.detect_language,
        diarize=parsed.diarize is not None, utterances=parsed.utterances, paragraphs=parsed.paragraphs,
        numerals=parsed.numerals), headers={DG_REQUEST_ID: request_id})


def refuse_url_body(content_type: str, upload: bytes | memoryview) -> None:
    """Deepgram also takes {"url": "..."} and fetches the audio itself; this server never fetches anything,
    so say so instead of calling the JSON corrupt audio."""
    if len(upload) > URL_BODY_MAX:
        return
    body = bytes(upload)
    if not (content_type == "application/json" or body.lstrip()[:1] == b"{"):
        return
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser's recursion allows
        return
    if isinstance(parsed, dict) and "url" in parsed:
        raise BadRequest("Fetching audio from a URL is not supported by this server: send the audio bytes as "
                         "the request body", param="url")
