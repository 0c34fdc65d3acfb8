"""Drive the live page in Debian's headless Chromium with a WAV file as the microphone (Playwright)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import soundfile as sf

from stt.audio import SAMPLE_RATE, decode_audio

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def unavailable() -> str | None:
    """Why the browser test cannot run here, or None."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        return "Debian chromium is not installed (make browser, or apt-get install chromium)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (requirements-dev.txt)"
    return None


def microphone_wav(source: Path, directory: Path) -> Path:
    """The shared clip as 16 kHz mono 16-bit WAV, the format Chromium's fake capture device reads."""
    wav = directory / (source.stem + ".wav")
    sf.write(wav, decode_audio(source.read_bytes()), SAMPLE_RATE, subtype="PCM_16")
    return wav


async def transcribe_on_page(url: str, token: str, source: Path, words: list[str], *,
                             timeout_s: float = 60.0, screenshot: Path | None = None,
                             init_script: str | None = None, sockets: list[str] | None = None) -> str:
    """Open the page, type the token, press the microphone button and wait until ``words`` are shown.
    ``init_script`` runs before the page's own scripts (to take a browser feature away, say); the URLs of the
    WebSockets the page opens are appended to ``sockets``."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as tmp:
        wav = microphone_wav(source, Path(tmp))
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=shutil.which("chromium") or CHROMIUM,
                args=[*FLAGS, f"--use-file-for-fake-audio-capture={wav}%noloop"])  # Playwright makes a fresh profile
            try:
                page = await browser.new_page()
                if init_script:
                    await page.add_init_script(init_script)
                if sockets is not None:
                    page.on("websocket", lambda ws: sockets.append(ws.url))
                console: list[str] = []
                page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
                await page.goto(url)
                await page.fill("#token", token)
                await page.click("#mic")
                condition = " && ".join(
                    f"document.querySelector('#finals').textContent.toLowerCase().includes('{w}')" for w in words)
                try:
                    await page.wait_for_function(condition, timeout=timeout_s * 1000)
                except PlaywrightTimeout as exc:
                    status = await page.inner_text("#status")
                    shown = await page.inner_text("#transcript")
                    raise AssertionError(f"words {words} not shown; status {status!r}, transcript {shown!r}, "
                                         f"console {console}") from exc
                if screenshot is not None:
                    screenshot.parent.mkdir(parents=True, exist_ok=True)
                    await page.screenshot(path=str(screenshot), full_page=True)
                await page.click("#mic")  # stop: CloseStream
                await page.wait_for_function(
                    "document.querySelector('#mic').getAttribute('aria-pressed') === 'false'", timeout=20000)
                return await page.inner_text("#transcript")
            finally:
                await browser.close()
