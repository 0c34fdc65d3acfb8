"""What an API face declares, in one object that auth, errors, metrics and the OpenAPI document read.

A face (native, OpenAI, Deepgram...) lives in one folder, ``stt/http/faces/<face>/``: its parameter tables
(``params.py``), its routes (``routes.py``), its renderers (``render.py``) and its error shape (``errors.py``),
and its ``__init__.py`` declares its ``Face``. ``registry.py`` lists the faces an app serves; nothing else in
the server knows a face's paths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from aiohttp import web


@dataclasses.dataclass(frozen=True)
class ErrorInfo:
    """An error answer, whatever its cause (a domain error, an aiohttp HTTP exception, a crash)."""

    status: int
    message: str
    code: str
    param: str | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


ErrorRenderer = Callable[[web.Request, ErrorInfo], web.Response]


@dataclasses.dataclass(frozen=True)
class Face:
    name: str
    # Paths that belong to the face (by prefix): its error shape, its wrong-token status, its metrics label.
    prefixes: tuple[str, ...]
    routes: Sequence[web.AbstractRouteDef]  # its HTTP routes; the OpenAPI paths are generated from them
    error_renderer: ErrorRenderer
    wrong_token_status: int = 403  # OpenAI's and Deepgram's SDKs raise AuthenticationError only on 401
    metrics_label: str = ""  # the `face` label of the HTTP metrics (default: the name)
    # App setup beyond the routes (cleanup contexts, shutdown hooks), run once the Transcriber context exists.
    setup: Callable[[web.Application], None] | None = None

    @property
    def label(self) -> str:
        return self.metrics_label or self.name

    def owns(self, path: str) -> bool:
        return path.startswith(self.prefixes)


FACES = web.AppKey("faces", tuple)  # the Face objects an app serves, in registry order


def face_for(faces: Sequence[Face], path: str) -> Face | None:
    """The face a path belongs to (None: no face, e.g. /health or /docs)."""
    return next((face for face in faces if face.owns(path)), None)


def app_face(request: web.Request) -> Face | None:
    return face_for(request.app.get(FACES, ()), request.path)
