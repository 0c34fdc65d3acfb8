"""Deepgram's asynchronous mode: POST /v1/listen?callback=<url>[&callback_method=post|put] answers at once with
``{"request_id"}`` and delivers Deepgram's normal response body to the URL when done. The request becomes a job
whose id is the request id, so ``GET /v1/jobs/<request_id>`` follows it. The Deepgram face's route hands such
requests here (``DEEPGRAM_CALLBACK``, set by this face): the jobs face knows Deepgram's, not the other way round."""

from __future__ import annotations

from aiohttp import web

from stt.errors import BadRequest
from stt.http.bodies import read_upload
from stt.http.faces.deepgram.errors import DG_REQUEST_ID, deepgram_request_id
from stt.http.faces.deepgram.params import DEEPGRAM_CALLBACK_PARAMS, MULTICHANNEL_MAX, deepgram_model, deepgram_request
from stt.http.faces.deepgram.routes import refuse_url_body
from stt.http.faces.jobs.routes import create_job, default_model_only, jobs_of
from stt.http.keys import MODELS, SETTINGS, TRANSCRIBER
from stt.http.params import check_model_support, parse_params, request_pairs
from stt.jobs.model import DEEPGRAM, Work

NAMES = frozenset(p.name for p in DEEPGRAM_CALLBACK_PARAMS)


async def deepgram_callback(request: web.Request) -> web.Response:
    jobs_of(request)  # 503 at once where jobs are off
    settings = request.app[SETTINGS]
    upload = await read_upload(request.clone(client_max_size=settings.jobs.max_upload_bytes))
    refuse_url_body(request.content_type, upload.audio)
    pairs = request_pairs(request.query, upload.items)
    callback = parse_params(DEEPGRAM_CALLBACK_PARAMS, [p for p in pairs if p[0] in NAMES])
    params = [p for p in pairs if p[0] not in NAMES]
    if callback["callback"] is None:
        raise BadRequest("callback: required with callback_method", param="callback")
    parsed = deepgram_request(params, settings.asr.beam_size)
    default_model_only(request, deepgram_model(parsed.model, request.app[MODELS].sources))
    engine = request.app[TRANSCRIBER].engine
    check_model_support(parsed.options, engine.multilingual, engine.model_name)
    work = Work(parsed.options, parsed.diarize, MULTICHANNEL_MAX if parsed.multichannel else 0)
    request_id = deepgram_request_id(request)
    await create_job(request, DEEPGRAM, params, work, upload.audio, callback["callback"],
                     callback["callback_method"].upper(), request_id)
    return web.json_response({"request_id": request_id}, headers={DG_REQUEST_ID: request_id})
