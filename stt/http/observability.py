"""Request ids and the access log: one line per request naming its id, route, status, audio and timings."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from auth.client_address import client_address
from stt import metrics
from stt.http.faces.face import FACES, face_for
from stt.logs import request_id_var, safe
from stt.http.stats import request_stats

log = logging.getLogger("stt.access")
SERVER_NAME = "stt-server"
REQUEST_ID_HEADER = "X-Request-Id"
CLIENT_CLOSED = 499  # logged status of a request whose client left before the answer (nginx's convention)
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # only ids that are safe to echo and to log

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _request_id(request: web.Request) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if _CLIENT_ID.match(given) else str(uuid.uuid4())


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    stats = request_stats(request)
    stats.request_id = _request_id(request)
    request_id_var.set(stats.request_id)  # every log record of this request names it
    started = time.monotonic()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = CLIENT_CLOSED  # the client went away (or shutdown ran out of time): no response was sent
        raise
    finally:
        _log_line(request, status, time.monotonic() - started)


def _log_line(request: web.Request, status: int, total_s: float) -> None:
    stats = request_stats(request)
    # An unmatched path is the client's (percent-decoded: %0A is a newline): escaped and cut, as every
    # client-controlled value in a log line (stt/logs.safe).
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else safe(request.path)
    job = stats.job
    queued, engine = (job.queued_s, job.engine_s) if job else (None, None)
    fields = {"method": safe(request.method, 20), "route": route, "status": status,
              "client": safe(client_address(request), 64),
              "audio_s": stats.audio_s, "queue_s": queued, "engine_s": engine, "total_s": round(total_s, 4)}
    log.info("%s %s %s %d audio=%s queue=%s engine=%s total=%.3fs client=%s", stats.request_id, fields["method"],
             route, status, _secs(stats.audio_s), _secs(queued), _secs(engine), total_s, fields["client"],
             extra=fields)
    matched = route if request.match_info.route.resource else None
    metrics.observe_request(face_label(request, matched), request.method, matched, status, total_s, stats.audio_s,
                            queued, engine, stats.error_code)


def face_label(request: web.Request, route: str | None) -> str:
    """The metrics label: a WebSocket stream is counted as `live` whatever its face; a request to no face
    (ops, docs, a 404) as `other`."""
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return "live"
    face = face_for(request.app.get(FACES, ()), route or "")
    return face.label if face else "other"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: every response, WebSocket upgrades and errors included, names its id."""
    response.headers[REQUEST_ID_HEADER] = request_stats(request).request_id
    response.headers["Server"] = SERVER_NAME  # aiohttp's default names Python's and its own version
