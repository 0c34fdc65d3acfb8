"""Run the live page by hand in headless Chromium and save a screenshot: bench/out/live_page.png.

    .venv/bin/python bench/browser_demo.py [--model tiny.en]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stt.http import aiohttp_patches  # noqa: E402
from stt.http.app import create_app  # noqa: E402
from stt.settings import settings_from_dict  # noqa: E402
from tests.browser import transcribe_on_page, unavailable  # noqa: E402
from tests.helpers import AUDIO_DIR  # noqa: E402

TOKEN = "demo-token"
CLIP = AUDIO_DIR / "en" / "librispeech" / "1089-134686-0000.flac"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="base")
    args = parser.parse_args()
    reason = unavailable()
    if reason:
        print(f"skipped: {reason}")
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = settings_from_dict({"server": {"http": {"allowed_tokens": [TOKEN]}},
                                   "asr": {"model": args.model, "threads": 2}}, env={})
    aiohttp_patches.apply()
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        out = ROOT / "bench" / "out" / "live_page.png"
        text = await transcribe_on_page(f"http://localhost:{port}/", TOKEN, CLIP, ["stew", "sauce"], screenshot=out)
        print(f"page transcript: {text!r}\nscreenshot: {out}")
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
