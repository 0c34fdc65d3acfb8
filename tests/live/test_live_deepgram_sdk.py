"""Deepgram's own Python SDK, pointed at this server, transcribes a shared file over its live client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.helpers import TOKEN, manifest, wer
from tests.live_helpers import load_pcm16

deepgram = pytest.importorskip("deepgram", reason="deepgram-sdk is a dev dependency (requirements-dev.txt)")

CLIP = "en/librispeech/1089-134686-0005.flac"  # 9.6 s


@pytest.mark.model
async def test_deepgram_sdk_live_client(aiohttp_server: Any, fw_tiny: Any) -> None:
    from deepgram import AsyncDeepgramClient
    from deepgram.environment import DeepgramClientEnvironment

    from stt.http.app import create_app
    from tests.conftest import make_settings

    server = await aiohttp_server(create_app(make_settings(), engine=fw_tiny))
    base = f"127.0.0.1:{server.port}"
    environment = DeepgramClientEnvironment(base=f"http://{base}", production=f"ws://{base}",
                                            agent=f"ws://{base}", agent_rest=f"http://{base}")
    client = AsyncDeepgramClient(api_key=TOKEN, environment=environment)
    data = load_pcm16(CLIP)
    received: list[Any] = []
    async with client.listen.v1.connect(model="nova-3", encoding="linear16", sample_rate=16000,
                                        interim_results=True, punctuate=True) as socket:
        async def listen() -> None:
            async for message in socket:
                received.append(message)

        reader = asyncio.create_task(listen())
        for i in range(0, len(data), 6400):  # 200 ms frames, twice real time
            await socket.send_media(data[i:i + 6400])
            await asyncio.sleep(0.1)
        await socket.send_close_stream()
        await asyncio.wait_for(reader, 60)

    kinds = [type(m).__name__ for m in received]
    assert kinds[-1] == "ListenV1Metadata", kinds
    finals = [m for m in received if type(m).__name__ == "ListenV1Results" and m.is_final]
    assert finals and any(type(m).__name__ == "ListenV1Results" and not m.is_final for m in received)
    text = " ".join(m.channel.alternatives[0].transcript for m in finals)
    assert wer(manifest()[CLIP].transcript, text) <= 0.2
    assert finals[0].channel.alternatives[0].words[0].punctuated_word
    assert received[-1].duration == pytest.approx(manifest()[CLIP].seconds, abs=0.01)
