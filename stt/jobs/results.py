"""A job's transcripts stored as JSON, and rendered as the face the job came from answers."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from stt import formats
from stt.engines.base import Segment, Transcript, WindowResult, Word
from stt.jobs.model import DEEPGRAM, Job
from stt.options import deepgram_request, stt_request


def transcripts_to_json(transcripts: list[Transcript]) -> str:
    """One transcript per channel (one unless Deepgram's multichannel)."""
    return json.dumps([dataclasses.asdict(t) for t in transcripts], separators=(",", ":"))


def transcripts_from_json(text: str) -> list[Transcript]:
    return [_transcript(t) for t in json.loads(text)]


def _transcript(d: dict[str, Any]) -> Transcript:
    segments = tuple(Segment(**{**s, "words": tuple(Word(**w) for w in s["words"]), "tokens": tuple(s["tokens"])})
                     for s in d["segments"])
    return Transcript(d["text"], segments, d["language"], d["language_probability"], d["duration"])


def window_to_json(result: WindowResult) -> str:
    return json.dumps(dataclasses.asdict(result), separators=(",", ":"))


def window_from_json(text: str) -> WindowResult:
    d = json.loads(text)
    return WindowResult(d["text"], tuple(Word(**w) for w in d["words"]), d["language"], d["language_probability"])


@dataclasses.dataclass(frozen=True)
class Rendered:
    body: str
    content_type: str


def render(job: Job, transcripts: list[Transcript], output: str | None, *, engine: str, model: str,
           beam_size: int) -> Rendered:
    """The result as the job's face answers: Deepgram's response body, or the native ``output``."""
    if job.face == DEEPGRAM:
        return Rendered(json.dumps(deepgram_body(job, transcripts, engine=engine, model=model,
                                                 beam_size=beam_size)), "application/json")
    parsed = stt_request(job.params, beam_size)
    output = output or parsed.output
    transcript = transcripts[0]
    proc = round((job.finished_at or 0) - (job.started_at or 0), 3)
    if output == "json":
        return Rendered(json.dumps(formats.native_json(transcript, proc)), "application/json")
    if output == "verbose_json":
        body = formats.native_verbose_json(transcript, parsed.options.task, proc,
                                           words=parsed.options.word_timestamps)
        return Rendered(json.dumps(body), "application/json")
    text = formats.render_text(output, transcript)
    return Rendered(text.body, text.content_type)


def deepgram_body(job: Job, transcripts: list[Transcript], *, engine: str, model: str,
                  beam_size: int) -> dict[str, Any]:
    parsed = deepgram_request(job.params, beam_size)
    return formats.deepgram_json(transcripts if parsed.multichannel else transcripts[0], request_id=job.id,
                                 sha256=job.meta.get("sha256", ""), engine=engine, model=model,
                                 punctuate=parsed.punctuate, detected=parsed.detect_language,
                                 diarize=parsed.diarize is not None, utterances=parsed.utterances,
                                 paragraphs=parsed.paragraphs)
