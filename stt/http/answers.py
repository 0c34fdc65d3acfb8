"""Answers whose body is shaped from a whole transcript, built and serialised in a thread.

An hour's transcript is ~10k words: its verbose JSON with word timings is ~0.2 s of pure Python to shape and
serialise (measured: 116 ms to build, 90 ms for ``json.dumps``, 9,600 words, 2 MB). On the event loop that
would stall every other client (``/ping``, live frames) for as long; in a thread, the loop keeps its turns at
every GIL switch (5 ms), but only between bytecodes: ``json.dumps`` of the whole body is one C call that holds the
GIL throughout (~90 ms for that hour), so long lists are serialised an element at a time (``dumps``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from stt.engines.base import Transcript
from stt.http import formats


async def json_answer(build: Callable[[], Any], headers: Mapping[str, str] | None = None) -> web.Response:
    """``build()``'s JSON (as ``web.json_response`` writes it), shaped and serialised off the event loop."""
    body = await asyncio.to_thread(lambda: dumps(build()))
    return web.Response(text=body, content_type="application/json", headers=headers)


async def text_answer(fmt: str, transcript: Transcript) -> web.Response:
    """The transcript in a text format (text, srt, vtt...), rendered off the event loop."""
    rendered = await asyncio.to_thread(formats.render_text, fmt, transcript)
    return web.Response(text=rendered.body, content_type=rendered.content_type, charset="utf-8")


LONG = 64  # a list longer than this is serialised an element at a time


def dumps(value: Any) -> str:
    """``json.dumps(value)`` exactly, made of short C calls: the GIL changes hands between a long list's
    elements, so the event loop is never held for the whole body."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)) and len(value) > LONG:
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    return json.dumps(value)
