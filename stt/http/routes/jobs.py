"""The jobs face (native API, token auth): POST /v1/jobs, GET /v1/jobs, GET|DELETE /v1/jobs/{id},
GET /v1/jobs/{id}/result; and the app-lifetime job store, runner and callback deliverer.

A job belongs to the token that created it (stored as a hash): another token gets 404, as for a job that does
not exist. The work itself is the domain's (stt/jobs); this module reads requests and renders answers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from aiohttp import web

from auth.middleware import token_from_header
from stt.errors import ApiError, BadRequest, Overloaded
from stt.http.bodies import read_upload
from stt.http.keys import ENGINE, SCHEDULER, SETTINGS
from stt import formats
from stt.engines.base import Engine, Transcript
from stt.jobs import results, webhooks
from stt.jobs.model import COMPLETED, DEEPGRAM, NATIVE, Job, JobsFull, Work, owner_of
from stt.jobs.runner import Inference, JobRunner
from stt.jobs.store import AsyncJobStore, SqliteJobStore
from stt.options import (MULTICHANNEL_MAX, OUTPUTS, Param, check_model_support, deepgram_request, parse_params,
                         request_pairs, stt_request)

log = logging.getLogger("stt.http.jobs")
PREFIX = "/v1/jobs"
RESPONSE_READ_MAX = 64 * 1024  # bytes of a callback receiver's answer read (and dropped)
PAGE_MAX = 100
CALLBACK_PARAMS: tuple[Param, ...] = (
    Param("callback_url", "string", "Called (POST, signed) when the job completes or fails; its host must be in "
          "`jobs.callback_allowed_hosts`.", max_length=webhooks.URL_MAX),
)
RESULT_PARAMS: tuple[Param, ...] = (
    Param("output", "string", "Format of the result (default: the job's `output`).", enum=OUTPUTS),
)
LIST_PARAMS: tuple[Param, ...] = (
    Param("limit", "integer", "Jobs per page, newest first.", default=20, minimum=1, maximum=PAGE_MAX),
    Param("before", "number", "Only jobs created before this time (`next_before` of the previous page).",
          minimum=0),
)


@dataclasses.dataclass
class Jobs:
    store: AsyncJobStore
    runner: JobRunner
    deliverer: webhooks.Deliverer


JOBS = web.AppKey("jobs", Jobs)
routes = web.RouteTableDef()


class NotFound(ApiError):
    status, code = 404, "not_found"


class NotReady(ApiError):
    status, code = 409, "not_ready"


def _jobs(request: web.Request) -> Jobs:
    jobs = request.app.get(JOBS)
    if jobs is None:
        raise Overloaded("Jobs are not enabled on this server (set jobs.dir or jobs.database_url in the config)")
    return jobs


def _owner(request: web.Request) -> str:
    token = token_from_header(request.headers.get("Authorization"))
    return owner_of(token or "")  # the auth middleware let the request through: it had a valid token


async def _own_job(request: web.Request) -> Job:
    job = await _jobs(request).store.call("get", request.match_info["job_id"][:100])
    if job is None or job.owner != _owner(request):
        raise NotFound("No such job")  # another token's job is not said to exist
    return job


@routes.post(PREFIX)
async def submit(request: web.Request) -> web.Response:
    jobs = _jobs(request)
    settings = request.app[SETTINGS]
    upload = await read_upload(request.clone(client_max_size=settings.jobs.max_upload_bytes))
    pairs = request_pairs(request.query, upload.items)
    callback = parse_params(CALLBACK_PARAMS, [p for p in pairs if p[0] == "callback_url"])["callback_url"]
    params = [p for p in pairs if p[0] != "callback_url"]
    parsed = stt_request(params, settings.asr.beam_size)  # a 400 now, not a failed job later
    engine = request.app[ENGINE]
    check_model_support(parsed.options, engine.multilingual, engine.model_name)
    work = Work(parsed.options, parsed.diarize)
    job = await create_job(request, NATIVE, params, work, upload.audio, callback, "POST", str(uuid.uuid4()))
    return web.json_response(job.public(result_url(job.id)), status=202, headers={"Location": f"{PREFIX}/{job.id}"})


async def create_job(request: web.Request, face: str, params: list[tuple[str, str]], work: Work, audio: bytes,
                     callback_url: str | None, callback_method: str, job_id: str) -> Job:
    """Shared by the faces that take jobs (native, Deepgram's ``callback``)."""
    jobs = _jobs(request)
    settings = request.app[SETTINGS].jobs
    if callback_url is not None:
        webhooks.check_callback_url(callback_url, settings.callback_allowed_hosts,
                                    "callback_url" if face == NATIVE else "callback")
    if not audio:
        raise BadRequest("Empty audio: the request body has no bytes")
    meta: dict[str, Any] = {}
    if face == DEEPGRAM:
        meta["sha256"] = await asyncio.to_thread(lambda: hashlib.sha256(audio).hexdigest())
    job = Job(id=job_id, owner=_owner(request), face=face, status="queued", params=tuple(params),
              created_at=time.time(), work=work, audio_bytes=len(audio), callback_url=callback_url,
              callback_method=callback_method, meta=meta)
    try:
        await jobs.store.create(job, audio, settings.max_queued, settings.max_disk_bytes)
    except JobsFull as exc:
        raise Overloaded(exc.message, headers={"Retry-After": str(exc.retry_after_s)}) from None
    jobs.runner.wake()
    log.info("job %s: queued (%s, %d bytes)", job.id, face, len(audio))
    return job


def result_url(job_id: str) -> str:
    return f"{PREFIX}/{job_id}/result"


@routes.get(PREFIX)
async def list_jobs(request: web.Request) -> web.Response:
    values = parse_params(LIST_PARAMS, request.query.items())
    found = await _jobs(request).store.call("list", _owner(request), values["limit"], values["before"])
    next_before = found[-1].created_at if len(found) == values["limit"] else None
    return web.json_response({"jobs": [j.public(result_url(j.id)) for j in found], "next_before": next_before})


@routes.get(PREFIX + "/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    job = await _own_job(request)
    return web.json_response(job.public(result_url(job.id)))


@routes.get(PREFIX + "/{job_id}/result")
async def get_result(request: web.Request) -> web.Response:
    output = parse_params(RESULT_PARAMS, request.query.items())["output"]
    job = await _own_job(request)
    if job.status != COMPLETED:
        raise NotReady(f"The job is {job.status}: no result" + (" yet" if not job.finished else ""))
    if job.face == DEEPGRAM and output is not None:
        raise BadRequest("output: a Deepgram job's result is Deepgram's response body", param="output")
    text = await _jobs(request).store.call("result", job.id)
    if text is None:
        raise NotFound("No such job")  # deleted in the meantime
    transcripts = await asyncio.to_thread(results.transcripts_from_json, text)
    engine = request.app[ENGINE]
    rendered = await asyncio.to_thread(render, job, transcripts, output, engine)
    return web.Response(text=rendered.body, content_type=rendered.content_type, charset="utf-8")


@routes.delete(PREFIX + "/{job_id}")
async def delete_job(request: web.Request) -> web.Response:
    job = await _own_job(request)
    jobs = _jobs(request)
    before = await jobs.store.call("cancel", job.id)
    if before is None:
        raise NotFound("No such job")
    jobs.runner.cancel_local(job.id)
    cancelled = before not in ("completed", "failed", "cancelled")
    return web.json_response({"id": job.id, "status": "cancelled" if cancelled else "deleted"})


# --- deepgram's `callback` on POST /v1/listen -------------------------------------------------------------------

DEEPGRAM_CALLBACK_PARAMS: tuple[Param, ...] = (
    Param("callback", "string", "Answer at once with `{\"request_id\"}` and deliver the response body to this "
          "URL when done (signed; its host must be in `jobs.callback_allowed_hosts`).", max_length=webhooks.URL_MAX),
    Param("callback_method", "string", "`post` (default) or `put`.", default="post", enum=("post", "put")),
)


async def deepgram_callback(request: web.Request, request_id: str) -> web.Response:
    """POST /v1/listen?callback=...: the request becomes a job whose result is Deepgram's response body."""
    settings = request.app[SETTINGS]
    from stt.http.routes.deepgram_compat import refuse_url_body

    upload = await read_upload(request.clone(client_max_size=settings.jobs.max_upload_bytes))
    refuse_url_body(request.content_type, upload.audio)
    pairs = request_pairs(request.query, upload.items)
    names = {p.name for p in DEEPGRAM_CALLBACK_PARAMS}
    callback = parse_params(DEEPGRAM_CALLBACK_PARAMS, [p for p in pairs if p[0] in names])
    params = [p for p in pairs if p[0] not in names]
    if callback["callback"] is None:
        raise BadRequest("callback: required with callback_method", param="callback")
    parsed = deepgram_request(params, settings.asr.beam_size)
    engine = request.app[ENGINE]
    check_model_support(parsed.options, engine.multilingual, engine.model_name)
    work = Work(parsed.options, parsed.diarize, MULTICHANNEL_MAX if parsed.multichannel else 0)
    await create_job(request, DEEPGRAM, params, work, upload.audio, callback["callback"],
                     callback["callback_method"].upper(), request_id)
    return web.json_response({"request_id": request_id}, headers={"dg-request-id": request_id})


# --- rendering: a job's result and callback in its face's shape ------------------------------------------------

def render(job: Job, transcripts: list[Transcript], output: str | None, engine: Engine) -> formats.Rendered:
    """The result as the job's face answers: Deepgram's response body, or the native ``output``."""
    if job.face == DEEPGRAM:
        return formats.Rendered(json.dumps(deepgram_body(job, transcripts, engine)), "application/json")
    output = output or dict(job.params).get("output", "json")  # the job's own output (validated at submission)
    options = job.work.options
    transcript = transcripts[0]
    proc = round((job.finished_at or 0) - (job.started_at or 0), 3)
    if output == "json":
        return formats.Rendered(json.dumps(formats.native_json(transcript, proc)), "application/json")
    if output == "verbose_json":
        body = formats.native_verbose_json(transcript, options.task, proc, words=options.word_timestamps)
        return formats.Rendered(json.dumps(body), "application/json")
    return formats.render_text(output, transcript)


def deepgram_body(job: Job, transcripts: list[Transcript], engine: Engine) -> dict[str, Any]:
    parsed = deepgram_request(job.params, 5)  # its rendering flags (the beam size plays no part here)
    return formats.deepgram_json(transcripts if parsed.multichannel else transcripts[0], request_id=job.id,
                                 sha256=job.meta.get("sha256", ""), engine=engine.name, model=engine.model_name,
                                 punctuate=parsed.punctuate, detected=parsed.detect_language,
                                 diarize=parsed.diarize is not None, utterances=parsed.utterances,
                                 paragraphs=parsed.paragraphs)


def callback_body(engine: Engine) -> Callable[[Job, list[Transcript] | None], bytes]:
    """What a job's callback carries: the job (native), or Deepgram's response body or error shape."""

    def body(job: Job, transcripts: list[Transcript] | None) -> bytes:
        if job.face != DEEPGRAM:
            return json.dumps(job.public(result_url(job.id))).encode()
        if transcripts is not None:
            return json.dumps(deepgram_body(job, transcripts, engine)).encode()
        code = "Bad Request" if job.error_code == "invalid_audio" else "INTERNAL_SERVER_ERROR"
        return json.dumps({"err_code": code, "err_msg": job.error, "request_id": job.id}).encode()

    return body


# --- app lifetime ------------------------------------------------------------------------------------------------

def _sender(session: aiohttp.ClientSession, timeout_s: float) -> webhooks.Send:
    async def send(method: str, url: str, headers: dict[str, str], body: bytes) -> webhooks.Response:
        try:
            async with session.request(method, url, data=body, headers=headers, allow_redirects=False,
                                       timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                await response.content.read(RESPONSE_READ_MAX)  # bounded: the answer is not used
                ok = 200 <= response.status < 300
                return webhooks.Response(response.status, None if ok else f"HTTP {response.status}")
        except TimeoutError:
            return webhooks.Response(None, f"no answer within {timeout_s:g} s")
        except aiohttp.ClientError as exc:
            return webhooks.Response(None, type(exc).__name__)

    return send


def _open_store(settings: Any) -> Any:
    if settings.database_url:
        from stt.jobs.postgres import PostgresJobStore  # psycopg only where PostgreSQL is used

        return PostgresJobStore(settings.database_url)
    store = SqliteJobStore(settings.dir)
    requeued = store.requeue_interrupted()
    if requeued:
        log.warning("jobs: %d job(s) interrupted by the last stop start again", requeued)
    return store


async def jobs_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.jobs.dir is None and settings.jobs.database_url is None:
        yield
        return
    store = AsyncJobStore(await asyncio.to_thread(_open_store, settings.jobs))
    inference = Inference(app[ENGINE], app[SCHEDULER], settings.asr.upload_batch_seconds)
    # No proxies from the environment, no cookies: a callback goes straight to the listed host.
    session = aiohttp.ClientSession(trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
                                    connector=aiohttp.TCPConnector(limit=16))
    deliverer = webhooks.Deliverer(store, _sender(session, settings.jobs.callback_timeout_seconds),
                                   settings.jobs.webhook_secret or "", settings.jobs.callback_max_attempts,
                                   settings.jobs.callback_timeout_seconds + 30)
    runner = JobRunner(store, inference, settings.jobs, callback_body(app[ENGINE]), on_end=deliverer.wake)
    app[JOBS] = Jobs(store, runner, deliverer)
    runner.start()
    deliverer.start()
    try:
        yield
    finally:
        await runner.stop()
        await deliverer.stop()
        await session.close()
        await store.close()


def setup(app: web.Application) -> None:
    app.add_routes(routes)
    app.cleanup_ctx.append(jobs_ctx)


# --- OpenAPI ------------------------------------------------------------------------------------------------------

def openapi_paths() -> dict[str, Any]:
    """The jobs routes for /openapi.json (stt/http/openapi.py adds them to the document)."""
    from stt.http import openapi as o
    from stt.options import STT_PARAMS

    job_id = [{"name": "job_id", "in": "path", "required": True, "schema": o.STR}]
    found = {"200": {"description": "The job", "content": {o.JSON: {"schema": o._ref("Job")}}}}
    missing = {"404": {"description": "No such job (or another token's)",
                       "content": {o.JSON: {"schema": o._ref("Error")}}}}
    errors = o._errors("Error", o.AUTH_ERRORS)
    result_content: dict[str, Any] = {o.JSON: {"schema": {"anyOf": [
        o._ref("Transcript"), o._ref("VerboseTranscript"), o._ref("DeepgramResponse")]}}}
    result_content.update({t: {"schema": o.STR} for t in o.TEXT_FORMATS})
    return {
        PREFIX: {
            "post": o._op("jobs", "Submit a job", "The audio (raw body or multipart `file`) and the options of "
                          "`POST /stt`, plus `callback_url`. Answers 202 at once with the job and its `Location`; "
                          "the job is transcribed in the background at the lowest priority, kept across restarts.",
                          operationId="createJob", parameters=o._query((*STT_PARAMS, *CALLBACK_PARAMS)),
                          requestBody=o._audio_body((*STT_PARAMS, *CALLBACK_PARAMS)),
                          responses={"202": {"description": "Queued", "headers": {"Location": {
                              "description": "The job's URL", "schema": o.STR}},
                              "content": {o.JSON: {"schema": o._ref("Job")}}},
                              **o._errors("Error", (400, 401, 403, 413, 429, 503))}),
            "get": o._op("jobs", "List your jobs", "The token's jobs, newest first, a page at a time.",
                         operationId="listJobs", parameters=o._query(LIST_PARAMS),
                         responses={"200": {"description": "A page of jobs", "content": {o.JSON: {
                             "schema": o._ref("JobList")}}}, **o._errors("Error", (400, 401, 403, 429, 503))}),
        },
        PREFIX + "/{job_id}": {
            "get": o._op("jobs", "A job's status and progress", "Status, seconds of audio done and in all, "
                         "timestamps, error, callback attempts.", operationId="getJob", parameters=job_id,
                         responses={**found, **missing, **errors}),
            "delete": o._op("jobs", "Cancel or delete a job", "A queued or running job is cancelled; its audio "
                            "and result are deleted (a finished job is removed).", operationId="deleteJob",
                            parameters=job_id, responses={"200": {"description": "Done", "content": {o.JSON: {
                                "schema": o._obj(("id", "status"), id=o.STR,
                                                 status={"enum": ["cancelled", "deleted"]})}}},
                                **missing, **errors}),
        },
        PREFIX + "/{job_id}/result": {
            "get": o._op("jobs", "A completed job's result", "In `output`'s format (a Deepgram job: Deepgram's "
                         "response body). 409 while the job is not completed.", operationId="getJobResult",
                         parameters=job_id + o._query(RESULT_PARAMS),
                         responses={"200": {"description": "The result", "content": result_content}, **missing,
                                    "409": {"description": "Not completed (yet)",
                                            "content": {o.JSON: {"schema": o._ref("Error")}}},
                                    **o._errors("Error", (400, 401, 403, 429))}),
        },
    }


def openapi_schemas() -> dict[str, Any]:
    from stt.http import openapi as o

    nullable_num = {"type": ["number", "null"]}
    job = o._obj(("id", "status", "created_at", "progress", "options", "face"), id=o.STR,
                 status={"enum": ["queued", "processing", "completed", "failed", "cancelled"]},
                 created_at=o.NUM, started_at=nullable_num, finished_at=nullable_num,
                 progress=o._obj(("done_seconds", "total_seconds"), done_seconds=o.NUM, total_seconds=nullable_num),
                 options={"type": "object"}, face={"enum": ["native", "deepgram"]}, result_url=o.STR,
                 error=o._obj(("message",), message=o.STR, code={"type": ["string", "null"]}),
                 callback=o._obj(("url", "method", "state", "attempts"), url=o.STR, method=o.STR,
                                 state={"enum": ["waiting", "pending", "delivered", "failed"]},
                                 attempts={"type": "array", "items": o._obj(
                                     ("at", "status"), at=o.NUM, status={"type": ["integer", "null"]},
                                     error={"type": ["string", "null"]})}))
    page = o._obj(("jobs", "next_before"), jobs={"type": "array", "items": o._ref("Job")},
                  next_before=nullable_num)
    return {"Job": job, "JobList": page}
