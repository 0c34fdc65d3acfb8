"""The jobs face: asynchronous transcription jobs (``routes.py``), their parameters (``params.py``), results and
callbacks rendered as the face a job came from (``render.py``), and the store, runner and callback deliverer
made for the app's lifetime (``lifetime.py``). The work itself is the domain's: ``stt/jobs``."""

from __future__ import annotations

from aiohttp import web

from stt.http.faces.face import Face
from stt.http.faces.jobs.deepgram import deepgram_callback
from stt.http.faces.jobs.lifetime import jobs_ctx
from stt.http.faces.jobs.render import PREFIX
from stt.http.faces.jobs.routes import routes
from stt.http.faces.native.errors import native_error
from stt.http.keys import DEEPGRAM_CALLBACK


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(jobs_ctx)  # after the Transcriber's: the jobs stop before it drains
    app[DEEPGRAM_CALLBACK] = deepgram_callback  # Deepgram's `callback` runs as a job


# Part of the native API: its error shape, and a wrong token is 403 (no token: 401).
FACE = Face(name="jobs", prefixes=(PREFIX,), routes=routes, error_renderer=native_error, wrong_token_status=403,
            setup=setup)
