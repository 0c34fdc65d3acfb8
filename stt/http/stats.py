"""Per-request accounting that the access log reports: audio seconds, time queued, time in the engine."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from stt.inference.scheduler import JobStats


@dataclasses.dataclass
class RequestStats:
    request_id: str = ""
    audio_s: float | None = None
    job: JobStats | None = None
    error_code: str | None = None  # the code of the error answer, if any (metrics count refusals by it)


_KEY = web.RequestKey("stt_stats", RequestStats)


def request_stats(request: web.Request) -> RequestStats:
    stats = request.get(_KEY)
    if stats is None:
        stats = request[_KEY] = RequestStats()
    return stats
