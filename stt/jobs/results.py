"""A job's work, window results and transcripts as JSON, the way the store keeps them."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from stt.diarization.types import DiarizeOptions
from stt.engines.base import Segment, TranscribeOptions, Transcript, WindowResult, WindowScores, Word
from stt.jobs.model import Work


def work_to_json(work: Work) -> str:
    return json.dumps(dataclasses.asdict(work), separators=(",", ":"))


def work_from_json(text: str) -> Work:
    d = json.loads(text)
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in d["options"].items()}
    diarize = DiarizeOptions(**d["diarize"]) if d["diarize"] is not None else None
    return Work(TranscribeOptions(**options), diarize, d["max_channels"])


def transcripts_to_json(transcripts: list[Transcript]) -> str:
    """One transcript per channel (one unless each channel was transcribed on its own)."""
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
    scores = d.get("scores")  # absent in chunks a server before segment scores recorded
    return WindowResult(d["text"], tuple(Word(**w) for w in d["words"]), d["language"], d["language_probability"],
                        WindowScores(**scores) if scores else None)
