"""Entry point: python server.py [--config config.json] [--host H] [--port P]"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import os
import ssl
import sys

from stt.memory_budget import limit_heap_arenas, restart_with_huge_pages

if __name__ == "__main__" and os.environ.get("STT_HUGE_PAGES") == "1":
    # Opt-in: glibc's tunables for large buffers (read only at start; see stt/memory_budget.py). -40 MB of peak,
    # but the chapter took 26-30 s against 24-25 s without them on a quiet machine (README, memory).
    restart_with_huge_pages()
limit_heap_arenas()  # before numpy's threads start (at import, below): see stt/memory_budget.py

from aiohttp import web  # noqa: E402

from stt.http import aiohttp_patches  # noqa: E402
from stt.http.app import create_app, server_options, unfinished_work  # noqa: E402
from stt.http.connections import serve
from stt.models import ModelError
from stt import logs
from stt.settings import ConfigError, LoggingSettings, Settings, load_settings, validate

log = logging.getLogger("stt.server")
CONFIG_ENV = "STT_CONFIG"  # the config path, for containers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Self-hosted Whisper speech-to-text server")
    parser.add_argument("--config", default=os.environ.get(CONFIG_ENV, "config.json"),
                        help=f"path to the JSON config (default: ${CONFIG_ENV}, else config.json)")
    parser.add_argument("--host", help="override server.http.host")
    parser.add_argument("--port", type=int, help="override server.http.port")
    return parser.parse_args(argv)


def with_overrides(settings: Settings, args: argparse.Namespace) -> Settings:
    changes = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if not changes:
        return settings
    http = dataclasses.replace(settings.http, **changes)
    overridden = dataclasses.replace(settings, server=dataclasses.replace(settings.server, http=http))
    validate(overridden)  # --port 70000 is as wrong as "port": 70000
    return overridden


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.http.ssl_certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.http.ssl_certfile, settings.http.ssl_keyfile)
    return context


def main(argv: list[str] | None = None) -> int:
    logs.configure(LoggingSettings())  # text until the config says otherwise
    args = parse_args(argv)
    try:
        settings = with_overrides(load_settings(args.config), args)
        context = ssl_context(settings)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ssl.SSLError) as exc:
        print(f"config error: server.http.ssl_certfile/ssl_keyfile: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.logging)
    scheme = "https" if context else "http"
    try:
        return _serve(settings, context, scheme)
    except ModelError as exc:  # raised while loading at start-up: say what to fix, not a traceback
        print(f"model error: {exc}", file=sys.stderr)
        return 3


def _serve(settings: Settings, context: ssl.SSLContext | None, scheme: str) -> int:
    http = settings.http
    aiohttp_patches.apply()  # process-wide, once, before any server runs
    app = create_app(settings)
    app.on_startup.append(freeze_startup_heap)  # after the models' load (cleanup contexts run first)
    serve(
        app,
        host=http.host,
        port=http.port,
        ssl_context=context,
        max_connections=http.max_connections,
        **server_options(settings),
        on_ready=lambda: log.info("ready: listening on %s://%s:%d", scheme, http.host, http.port),
    )
    return _exit_code(app)


async def freeze_startup_heap(app: web.Application) -> None:
    """The objects that live as long as the process (libraries, models, settings) leave the cyclic garbage
    collector's view. A full collection holds the GIL while it walks every tracked object: with them in view, one
    that fell in the middle of shaping an hour's transcript stalled the event loop ~150 ms (tests/faces/
    test_answers_off_loop.py); frozen, it walks only what requests made since."""
    gc.collect()
    gc.freeze()


def _exit_code(app: web.Application) -> int:
    """0 when everything accepted was answered; 1 when the shutdown timeout cut work off."""
    lost = unfinished_work(app)
    if not lost:
        log.info("stopped: every accepted request was answered")
        return 0
    log.error("stopped after limits.shutdown_timeout_seconds: %d accepted request(s) not finished", lost)
    logging.shutdown()
    # An engine thread may still be inside the model and cannot be interrupted; do not wait for it at exit.
    os._exit(1)


if __name__ == "__main__":
    sys.exit(main())
