"""The page's upload form in headless Chromium: a file sent as a job, its progress, the text and the downloads."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from stt.http.app import create_app
from tests.browser import CHROMIUM, FLAGS, unavailable
from tests.conftest import make_settings
from tests.helpers import AUDIO_DIR, TOKEN

CLIP = AUDIO_DIR / "en" / "librispeech" / "1089-134686-0000.flac"  # "He hoped there would be stew for dinner..."


async def test_page_has_the_job_controls(client: Any) -> None:
    html = await (await client.get("/")).text()
    for element in ('id="job-progress"', 'id="job-stage"', 'id="downloads"', 'data-output="srt"',
                    'data-output="vtt"', 'data-output="text"', 'data-output="verbose_json"'):
        assert element in html


@pytest.mark.model
async def test_upload_form_runs_a_job_and_offers_downloads(aiohttp_server: Any, fw_tiny: Any,
                                                           tmp_path: Path) -> None:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    server = await aiohttp_server(create_app(make_settings(jobs={"dir": str(tmp_path / "jobs")}), engine=fw_tiny))
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=shutil.which("chromium") or CHROMIUM, args=FLAGS)
        try:
            page = await browser.new_page(accept_downloads=True)
            requests: list[str] = []
            page.on("request", lambda r: requests.append(f"{r.method} {r.url.split(str(server.port))[-1]}"))
            await page.goto(f"http://localhost:{server.port}/")
            await page.fill("#token", TOKEN)
            await page.set_input_files("#file", str(CLIP))
            await page.click("#upload-form button[type=submit]")
            await page.wait_for_selector("#downloads:not([hidden])", timeout=120_000)
            text = await page.inner_text("#upload-result")
            stage = await page.inner_text("#job-stage")
            value = await page.eval_on_selector("#job-progress", "e => e.value")
            async with page.expect_download() as info:
                await page.click("#downloads button[data-output=srt]")
            download = await info.value
            srt = Path(await download.path()).read_text()
            assert download.suggested_filename == "1089-134686-0000.srt"
        finally:
            await browser.close()
    assert "stew for dinner" in text.lower()
    assert stage == "done" and value == 1
    assert "POST /v1/jobs" in requests and "GET /v1/jobs/" in " ".join(requests)
    assert "/stt" not in " ".join(requests)
    assert "-->" in srt and "stew" in srt.lower()
