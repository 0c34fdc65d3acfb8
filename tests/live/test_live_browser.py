"""Browser end to end: the page at / in headless Chromium, a WAV file as the microphone, words on the page."""

from __future__ import annotations

from typing import Any

import pytest

from stt.http.app import create_app
from tests.browser import transcribe_on_page, unavailable
from tests.conftest import make_settings
from tests.helpers import AUDIO_DIR, TOKEN

CLIP = AUDIO_DIR / "en" / "librispeech" / "1089-134686-0000.flac"  # "He hoped there would be stew for dinner..."


async def test_page_is_public_and_has_the_controls(client: Any) -> None:
    resp = await client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html"
    html = await resp.text()
    for element in ('id="token"', 'id="mic"', 'id="status"', 'id="interim"', 'id="upload-form"'):
        assert element in html
    for name in ("app.js", "capture-worklet.js", "style.css"):
        assert (await client.get(f"/web/{name}")).status == 200
    assert (await client.get("/web/..%2Fserver.py")).status == 404
    assert (await client.get("/web/server.py")).status == 404


@pytest.mark.model
async def test_browser_microphone_to_transcript(aiohttp_server: Any, fw_tiny: Any) -> None:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    server = await aiohttp_server(create_app(make_settings(), engine=fw_tiny))
    sockets: list[str] = []
    text = await transcribe_on_page(f"http://localhost:{server.port}/", TOKEN, CLIP, ["stew", "dinner", "turnips"],
                                    sockets=sockets)
    assert "stew for dinner" in text.lower()
    assert len(sockets) == 1 and "encoding=linear16&sample_rate=16000" in sockets[0]  # AudioWorklet at 16 kHz


@pytest.mark.model
async def test_browser_mediarecorder_fallback(aiohttp_server: Any, fw_tiny: Any) -> None:
    """Without AudioWorklet the page streams MediaRecorder's WebM/Opus, decoded incrementally on the server."""
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    server = await aiohttp_server(create_app(make_settings(), engine=fw_tiny))
    sockets: list[str] = []
    text = await transcribe_on_page(f"http://localhost:{server.port}/", TOKEN, CLIP, ["stew", "dinner"],
                                    init_script="delete window.AudioWorkletNode;", sockets=sockets)
    assert "stew for dinner" in text.lower()
    assert len(sockets) == 1 and "encoding=" not in sockets[0]  # the container path, not linear16
