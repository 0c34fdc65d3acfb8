"""A job as stored: who owns it, what to do, how far it got, how it ended, and its callback's delivery."""

from __future__ import annotations

import asyncio

import dataclasses
import hashlib
from typing import Any

from stt.diarization.types import DiarizeOptions
from stt.engines.base import TranscribeOptions

QUEUED, PROCESSING, COMPLETED, FAILED, CANCELLED = "queued", "processing", "completed", "failed", "cancelled"
STATUSES = (QUEUED, PROCESSING, COMPLETED, FAILED, CANCELLED)
FINISHED = frozenset({COMPLETED, FAILED, CANCELLED})
NATIVE, DEEPGRAM = "native", "deepgram"  # the face a job came from: it shapes the result and the callback


def owner_of(token: str) -> str:
    """A job's owner: a hash of the token that created it (the token itself is never stored)."""
    return hashlib.sha256(token.encode("utf-8", errors="surrogateescape")).hexdigest()


@dataclasses.dataclass(frozen=True)
class Work:
    """What to do with a job's audio, decided by its face when it was submitted."""

    options: TranscribeOptions
    diarize: DiarizeOptions | None = None
    max_channels: int = 0  # 0: mixed down to mono; n: each of up to n channels transcribed on its own


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One callback delivery attempt."""

    at: float
    status: int | None  # the receiver's HTTP status; None when no answer came (refused, timeout)
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class Delivery:
    url: str
    method: str
    state: str  # "pending" (waiting to be sent or retried), "delivered", "failed" (gave up)
    attempts: tuple[Attempt, ...] = ()


@dataclasses.dataclass(frozen=True)
class Job:
    id: str
    owner: str
    face: str
    status: str
    params: tuple[tuple[str, str], ...]  # the request's parameters as given (its face renders the result by them)
    created_at: float
    work: Work = Work(TranscribeOptions())
    audio_bytes: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    done_s: float = 0.0  # seconds of audio transcribed
    total_s: float | None = None  # the audio's length, once decoded
    error: str | None = None
    error_code: str | None = None
    attempts: int = 0  # times a server started on it
    callback_url: str | None = None
    callback_method: str = "POST"
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)  # face details (Deepgram's request_id, sha256)
    delivery: Delivery | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def public(self, result_url: str) -> dict[str, Any]:
        """The job as its owner sees it (GET /v1/jobs/{id}, the callback's body)."""
        out: dict[str, Any] = {
            "id": self.id, "status": self.status, "created_at": self.created_at, "started_at": self.started_at,
            "finished_at": self.finished_at,
            "progress": {"done_seconds": round(self.done_s, 3),
                         "total_seconds": None if self.total_s is None else round(self.total_s, 3)},
            "options": dict(self.params), "face": self.face,
        }
        if self.status == COMPLETED:
            out["result_url"] = result_url
        if self.error:
            out["error"] = {"message": self.error, "code": self.error_code}
        if self.delivery is not None:
            out["callback"] = {"url": self.delivery.url, "method": self.delivery.method,
                               "state": self.delivery.state,
                               "attempts": [dataclasses.asdict(a) for a in self.delivery.attempts]}
        elif self.callback_url:
            out["callback"] = {"url": self.callback_url, "method": self.callback_method, "state": "waiting",
                               "attempts": []}
        return out


class JobsFull(Exception):
    """The queue or the disk budget is full: come back later (nothing accepted is dropped)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


async def woken_or_polled(wake: asyncio.Event, poll_s: float) -> None:
    """Wait for a wake-up or ``poll_s``, whichever is first (the queue and the outbox are also looked at unasked:
    another replica's work, a lost lease), then arm the event again."""
    try:
        async with asyncio.timeout(poll_s):
            await wake.wait()
    except TimeoutError:
        pass
    wake.clear()
