"""Bounded fuzzing (hypothesis) of the decoder and of POST /stt with mutated audio: only clean outcomes
(audio, or a 400/413), never a 5xx, a crash or a hang. bench/fuzz_long.py runs the same for longer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, event, given, settings

from stt.http.app import create_app
from stt.audio import SAMPLE_RATE, decode_audio
from stt.errors import AudioError, TooLarge
from tests.conftest import AUTH, make_settings
from tests.fuzzing import mutated_audio
from tests.helpers import FakeEngine

MAX_SECONDS = 30.0
BOUNDED = settings(max_examples=1500, deadline=None, derandomize=True, database=None,  # time: asserted below
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check_decode(data: bytes) -> None:
    """The property: decoded audio is sane, or the error is one the API answers with 400/413."""
    started = time.monotonic()
    try:
        audio = decode_audio(data, MAX_SECONDS)
    except (AudioError, TooLarge) as exc:
        event(type(exc).__name__)  # --hypothesis-show-statistics shows the mix of outcomes
        return
    finally:
        assert time.monotonic() - started < 3.0, "decoding took too long"
    assert audio.dtype == np.float32 and audio.ndim == 1 and audio.size > 0
    assert len(audio) <= (MAX_SECONDS + 1) * SAMPLE_RATE
    assert np.isfinite(audio).all()
    event("decoded")


@BOUNDED
@given(mutated_audio())
def test_fuzz_decoder(data: bytes) -> None:
    check_decode(data)


Live = tuple[asyncio.AbstractEventLoop, TestClient]


def start_live_app() -> Live:
    """The real app (FakeEngine) on its own loop, for examples that run synchronously (hypothesis)."""
    loop = asyncio.new_event_loop()

    async def start() -> TestClient:
        app = create_app(make_settings(limits={"max_audio_seconds": MAX_SECONDS}), engine=FakeEngine())
        client = TestClient(TestServer(app))
        await client.start_server()
        return client

    return loop, loop.run_until_complete(start())


def stop_live_app(live: Live) -> None:
    loop, client = live
    loop.run_until_complete(client.close())
    loop.close()


async def _post(client: TestClient, data: bytes) -> tuple[int, dict, float]:
    started = time.monotonic()
    resp = await client.post("/stt", data=data, headers=AUTH)
    body = await resp.json()
    ping = await client.get("/ping", headers=AUTH)
    assert ping.status == 200
    return resp.status, body, time.monotonic() - started


def check_endpoint(live: Live, data: bytes) -> None:
    """The property: a 200 with a transcript, or a 400/413 JSON error; fast; /ping still answers."""
    loop, client = live
    status, body, elapsed = loop.run_until_complete(asyncio.wait_for(_post(client, data), 10))
    assert status in (200, 400, 413), body
    assert body["status"] == ("success" if status == 200 else "failed")
    assert elapsed < 5.0
    event(str(status))


@pytest.fixture(scope="module")
def live_app() -> Iterator[Live]:
    live = start_live_app()
    yield live
    stop_live_app(live)


@settings(BOUNDED, max_examples=500)
@given(mutated_audio())
def test_fuzz_stt_endpoint(live_app: Live, data: bytes) -> None:
    check_endpoint(live_app, data)
