"""The real app on a real port in a background thread, for synchronous clients (OpenAI/Deepgram SDKs,
schemathesis) that would deadlock against a server running on the test's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from aiohttp import web

from stt.http.app import PARSER_OPTIONS


@contextlib.contextmanager
def serve_in_thread(app: web.Application) -> Iterator[str]:
    """Yield the base URL (``http://127.0.0.1:PORT``) while ``app`` serves; clean up on exit."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None, **PARSER_OPTIONS)
    ready = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
        except BaseException as exc:  # reported to the test thread below
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="live-server", daemon=True)
    thread.start()
    ready.wait(60)
    if failure:
        raise failure[0]
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
