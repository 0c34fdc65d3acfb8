"""The jobs face's routes (native API, token auth): POST /v1/jobs, GET /v1/jobs, GET|DELETE /v1/jobs/{id},
GET /v1/jobs/{id}/result.

A job belongs to the token that created it (stored as a hash): another token gets 404, as for a job that does
not exist. The work itself is the domain's (stt/jobs); this module reads requests and renders answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from typing import Any

from aiohttp import web

from auth.middleware import token_from_header
from stt.errors import BadRequest, NotFound, NotReady, Overloaded
from stt.http import apidoc as doc
from stt.http.apidoc import AUTH_ERRORS, JSON
from stt.http.bodies import read_upload
from stt.http.faces.jobs.lifetime import JOBS, Jobs
from stt.http.faces.jobs.params import CALLBACK_PARAMS, LIST_PARAMS, RESULT_PARAMS
from stt.http.faces.jobs.render import PREFIX, render, result_url
from stt.http.faces.native.params import STT_PARAMS, stt_request
from stt.http.keys import MODELS, SETTINGS, TRANSCRIBER
from stt.http.params import check_model_support, parse_params, request_pairs
from stt.jobs import results, webhooks
from stt.jobs.model import COMPLETED, DEEPGRAM, FINISHED, NATIVE, Job, JobsFull, Work, owner_of

log = logging.getLogger("stt.http.jobs")
routes = web.RouteTableDef()
JOB_ID = [{"name": "job_id", "in": "path", "required": True, "schema": doc.STR}]
FOUND = {"200": {"description": "The job", "content": {JSON: {"schema": doc.ref("Job")}}}}
MISSING = {"404": {"description": "No such job (or another token's)", "content": {JSON: {"schema": doc.ref("Error")}}}}


def jobs_of(request: web.Request) -> Jobs:
    jobs = request.app.get(JOBS)
    if jobs is None:
        raise Overloaded("Jobs are not enabled on this server (set jobs.dir or jobs.database_url in the config)")
    return jobs


def _owner(request: web.Request) -> str:
    token = token_from_header(request.headers.get("Authorization"))
    return owner_of(token or "")  # the auth middleware let the request through: it had a valid token


async def _own_job(request: web.Request) -> Job:
    job = await jobs_of(request).store.call("get", request.match_info["job_id"][:100])
    if job is None or job.owner != _owner(request):
        raise NotFound("No such job")  # another token's job is not said to exist
    return job


@routes.post(PREFIX)
@doc.describe(doc.op(
    "jobs", "Submit a job", "The audio (raw body or multipart `file`) and the options of `POST /stt`, plus "
    "`callback_url`. Answers 202 at once with the job and its `Location`; the job is transcribed in the "
    "background at the lowest priority, kept across restarts.", operationId="createJob",
    parameters=doc.query((*STT_PARAMS, *CALLBACK_PARAMS)), requestBody=doc.audio_body((*STT_PARAMS, *CALLBACK_PARAMS)),
    responses={"202": {"description": "Queued", "headers": {"Location": {"description": "The job's URL",
                                                                           "schema": doc.STR}},
                       "content": {JSON: {"schema": doc.ref("Job")}}},
               **doc.errors("Error", (400, 401, 403, 413, 429, 503))}))
async def submit(request: web.Request) -> web.Response:
    jobs_of(request)
    settings = request.app[SETTINGS]
    upload = await read_upload(request.clone(client_max_size=settings.jobs.max_upload_bytes))
    pairs = request_pairs(request.query, upload.items)
    callback = parse_params(CALLBACK_PARAMS, [p for p in pairs if p[0] == "callback_url"])["callback_url"]
    params = [p for p in pairs if p[0] != "callback_url"]
    parsed = stt_request(params, settings.asr.beam_size)  # a 400 now, not a failed job later
    default_model_only(request, parsed.model)
    engine = request.app[TRANSCRIBER].engine
    check_model_support(parsed.options, engine.multilingual, engine.model_name)
    work = Work(parsed.options, parsed.diarize)
    job = await create_job(request, NATIVE, params, work, upload.audio, callback, "POST", str(uuid.uuid4()))
    return web.json_response(job.public(result_url(job.id)), status=202, headers={"Location": f"{PREFIX}/{job.id}"})


def default_model_only(request: web.Request, name: str | None) -> None:
    """Jobs run on the default model (leased for the app's life): another model is a 400, never ignored."""
    models = request.app[MODELS]
    if name is not None and models.resolve(name) != models.default:
        raise BadRequest(f"model: jobs run on the default model ({models.default}); choosing another model per job "
                         "is not supported yet", param="model")


async def create_job(request: web.Request, face: str, params: list[tuple[str, str]], work: Work, audio: bytes,
                     callback_url: str | None, callback_method: str, job_id: str) -> Job:
    """Shared by the faces that take jobs (native here, Deepgram's ``callback``)."""
    jobs = jobs_of(request)
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
        raise Overloaded(exc.message, retry_after_s=exc.retry_after_s) from None
    jobs.runner.wake()
    log.info("job %s: queued (%s, %d bytes)", job.id, face, len(audio))
    return job


@routes.get(PREFIX)
@doc.describe(doc.op("jobs", "List your jobs", "The token's jobs, newest first, a page at a time.",
                     operationId="listJobs", parameters=doc.query(LIST_PARAMS),
                     responses={"200": {"description": "A page of jobs", "content": {JSON: {
                         "schema": doc.ref("JobList")}}}, **doc.errors("Error", (400, 401, 403, 429, 503))}))
async def list_jobs(request: web.Request) -> web.Response:
    values = parse_params(LIST_PARAMS, request.query.items())
    found = await jobs_of(request).store.call("list", _owner(request), values["limit"], values["before"])
    next_before = found[-1].created_at if len(found) == values["limit"] else None
    return web.json_response({"jobs": [j.public(result_url(j.id)) for j in found], "next_before": next_before})


@routes.get(PREFIX + "/{job_id}")
@doc.describe(doc.op("jobs", "A job's status and progress", "Status, seconds of audio done and in all, "
                     "timestamps, error, callback attempts.", operationId="getJob", parameters=JOB_ID,
                     responses={**FOUND, **MISSING, **doc.errors("Error", AUTH_ERRORS)}))
async def get_job(request: web.Request) -> web.Response:
    job = await _own_job(request)
    return web.json_response(job.public(result_url(job.id)))


def _result_content() -> dict[str, Any]:
    content: dict[str, Any] = {JSON: {"schema": {"anyOf": [
        doc.ref("Transcript"), doc.ref("VerboseTranscript"), doc.ref("DeepgramResponse")]}}}
    content.update({t: {"schema": doc.STR} for t in doc.TEXT_FORMATS})
    return content


@routes.get(PREFIX + "/{job_id}/result")
@doc.describe(doc.op("jobs", "A completed job's result", "In `output`'s format (a Deepgram job: Deepgram's "
                     "response body). 409 while the job is not completed.", operationId="getJobResult",
                     parameters=JOB_ID + doc.query(RESULT_PARAMS),
                     responses={"200": {"description": "The result", "content": _result_content()}, **MISSING,
                                "409": {"description": "Not completed (yet)",
                                        "content": {JSON: {"schema": doc.ref("Error")}}},
                                **doc.errors("Error", (400, 401, 403, 429))}))
async def get_result(request: web.Request) -> web.Response:
    output = parse_params(RESULT_PARAMS, request.query.items())["output"]
    job = await _own_job(request)
    if job.status != COMPLETED:
        raise NotReady(f"The job is {job.status}: no result" + (" yet" if not job.finished else ""))
    if job.face == DEEPGRAM and output is not None:
        raise BadRequest("output: a Deepgram job's result is Deepgram's response body", param="output")
    text = await jobs_of(request).store.call("result", job.id)
    if text is None:
        raise NotFound("No such job")  # deleted in the meantime
    transcripts = await asyncio.to_thread(results.transcripts_from_json, text)
    rendered = await asyncio.to_thread(render, job, transcripts, output, request.app[TRANSCRIBER].engine)
    return web.Response(text=rendered.body, content_type=rendered.content_type, charset="utf-8")


@routes.delete(PREFIX + "/{job_id}")
@doc.describe(doc.op("jobs", "Cancel or delete a job", "A queued or running job is cancelled; its audio and "
                     "result are deleted (a finished job is removed).", operationId="deleteJob", parameters=JOB_ID,
                     responses={"200": {"description": "Done", "content": {JSON: {"schema": doc.obj(
                         ("id", "status"), id=doc.STR, status={"enum": ["cancelled", "deleted"]})}}},
                         **MISSING, **doc.errors("Error", AUTH_ERRORS)}))
async def delete_job(request: web.Request) -> web.Response:
    job = await _own_job(request)
    jobs = jobs_of(request)
    before = await jobs.store.call("cancel", job.id)
    if before is None:
        raise NotFound("No such job")
    jobs.runner.cancel_local(job.id)
    return web.json_response({"id": job.id, "status": "deleted" if before in FINISHED else "cancelled"})
