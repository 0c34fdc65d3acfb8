"""A job's result and callback body, in the shape of the face the job came from."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from stt.engines.base import Engine, Transcript
from stt.http.faces.deepgram.params import deepgram_request
from stt.http.faces.deepgram.render import deepgram_json
from stt.http.faces.native.render import native_json, native_verbose_json
from stt.http.formats import Rendered, render_text
from stt.jobs.model import DEEPGRAM, Job

PREFIX = "/v1/jobs"


def result_url(job_id: str) -> str:
    return f"{PREFIX}/{job_id}/result"


def render(job: Job, transcripts: list[Transcript], output: str | None, engine: Engine) -> Rendered:
    """The result as the job's face answers: Deepgram's response body, or the native ``output``."""
    if job.face == DEEPGRAM:
        return Rendered(json.dumps(deepgram_body(job, transcripts, engine)), "application/json")
    output = output or dict(job.params).get("output", "json")  # the job's own output (validated at submission)
    options = job.work.options
    transcript = transcripts[0]
    proc = round((job.finished_at or 0) - (job.started_at or 0), 3)
    if output == "json":
        return Rendered(json.dumps(native_json(transcript, proc)), "application/json")
    if output == "verbose_json":
        body = native_verbose_json(transcript, options.task, proc, words=options.word_timestamps)
        return Rendered(json.dumps(body), "application/json")
    return render_text(output, transcript)


def deepgram_body(job: Job, transcripts: list[Transcript], engine: Engine) -> dict[str, Any]:
    parsed = deepgram_request(job.params, 5)  # its rendering flags (the beam size plays no part here)
    return deepgram_json(transcripts if parsed.multichannel else transcripts[0], request_id=job.id,
                         sha256=job.meta.get("sha256", ""), engine=engine.name, model=engine.model_name,
                         punctuate=parsed.punctuate, detected=parsed.detect_language,
                         diarize=parsed.diarize is not None, utterances=parsed.utterances, paragraphs=parsed.paragraphs,
                         numerals=parsed.numerals)


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
