"""The Realtime face on the real model (faster-whisper base) and shared audio: the official OpenAI Python SDK's
realtime client pointed at the server, the browsers' subprotocol key, a wrong key refused."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp
import numpy as np
import openai
import pytest

from stt.audio import SAMPLE_RATE, decode_audio
from tests.helpers import AUDIO_DIR, TOKEN, manifest, wer
from tests.realtime_helpers import (COMPLETED, STARTED, STOPPED, check_items, clip_pcm24, events_until_turns_done,
                                    g711, pcm24, receive_until, send_audio)

pytestmark = pytest.mark.model

CLIPS = ["en/librispeech/1089-134686-0000.flac", "en/jfk.flac"]
PATH = "/v1/realtime?intent=transcription"


def sdk_client(client: Any, key: str = TOKEN) -> openai.AsyncOpenAI:
    base = str(client.make_url("/v1"))
    return openai.AsyncOpenAI(api_key=key, base_url=base, websocket_base_url=base.replace("http", "ws", 1))


async def test_openai_sdk_realtime_session_transcribes_two_utterances(make_client: Any, fw_base: Any) -> None:
    client = await make_client(fw_base)
    refs = [manifest()[c].transcript for c in CLIPS]
    audio = b"".join(clip_pcm24(c, silence_after_s=1.5) for c in CLIPS)
    sdk = sdk_client(client)
    completed: list[str] = []
    kinds: list[str] = []
    seen: list[dict[str, Any]] = []

    def finished() -> bool:
        # Every item that speech opened is completed (server VAD cuts items at pauses of 500 ms, inside a clip
        # too), and all the audio with its trailing silence was sent.
        return sending.done() and len(completed) == kinds.count(STARTED) and len(completed) >= len(CLIPS)

    async with sdk.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        await conn.session.update(session={"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": {"model": "whisper-1", "language": "en"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}}})

        async def sender() -> None:
            for i in range(0, len(audio), 9600):  # 200 ms appends, twice real time
                await conn.input_audio_buffer.append(audio=base64.b64encode(audio[i:i + 9600]).decode())
                await asyncio.sleep(0.1)

        sending = asyncio.create_task(sender())
        events = aiter(conn)
        receiving = asyncio.ensure_future(anext(events))
        async with asyncio.timeout(120):
            # The last item may complete before the sender is done: wait for either, never for an event only.
            while not finished():
                await asyncio.wait({receiving} if sending.done() else {receiving, sending},
                                   return_when=asyncio.FIRST_COMPLETED)
                if not receiving.done():
                    continue
                event = receiving.result()
                receiving = asyncio.ensure_future(anext(events))
                kinds.append(event.type)
                seen.append(event.model_dump())
                if event.type == "error":
                    raise AssertionError((event.error, kinds, completed))
                if event.type == COMPLETED:
                    completed.append(event.transcript)
        receiving.cancel()
        await sending
    assert kinds[0] == "session.created" and "session.updated" in kinds
    assert list(check_items(seen).values()) == completed  # started/stopped paired, one completed per item
    assert wer(" ".join(refs), " ".join(completed)) <= 0.1, completed


async def test_openai_sdk_with_a_wrong_key_is_refused(make_client: Any, fw_base: Any) -> None:
    client = await make_client(fw_base)
    with pytest.raises(Exception) as info:  # the SDK surfaces the 401 handshake as websockets' InvalidStatus
        async with sdk_client(client, key="wrong").realtime.connect(extra_query={"intent": "transcription"},
                                                                     max_retries=0) as conn:
            await conn.recv()
    assert "401" in str(info.value), info.value


async def test_browser_subprotocol_manual_commit_g711(make_client: Any, fw_base: Any) -> None:
    """A browser's handshake (key in the subprotocol), μ-law telephone audio, commits by the client."""
    client = await make_client(fw_base)
    ws = await client.ws_connect(PATH, protocols=("realtime", f"openai-insecure-api-key.{TOKEN}"))
    assert ws.protocol == "realtime"
    await ws.send_str(json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {
        "input": {"format": {"type": "audio/pcmu"}, "turn_detection": None}}}}))
    await receive_until(ws, "session.updated")
    for clip in CLIPS:
        audio = decode_audio((AUDIO_DIR / clip).read_bytes())
        await send_audio(ws, g711(np.concatenate([audio, np.zeros(SAMPLE_RATE // 2, np.float32)]), "ulaw"),
                         speed=4, bytes_per_second=8000)
        await ws.send_str(json.dumps({"type": "input_audio_buffer.commit"}))
        done = await receive_until(ws, "conversation.item.input_audio_transcription.completed", timeout=120)
        assert wer(manifest()[clip].transcript, done["transcript"]) <= 0.15, done["transcript"]
    await ws.close()


async def test_wrong_subprotocol_key_is_refused(make_client: Any, fw_base: Any) -> None:
    client = await make_client(fw_base)
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(PATH, protocols=("realtime", "openai-insecure-api-key.wrong"))
    assert info.value.status == 401


async def test_a_commit_in_the_middle_of_speech_loses_no_words(make_client: Any, fw_base: Any) -> None:
    """turn_detection null, a commit 4 s into a sentence, the rest, a second commit: the two items hold every
    word of the clip, in order (the session goes on after a commit, as after Deepgram's Finalize)."""
    client = await make_client(fw_base)
    ws = await client.ws_connect(PATH, headers={"Authorization": f"Bearer {TOKEN}"})
    await ws.send_str(json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {
        "input": {"turn_detection": None}}}}))
    await receive_until(ws, "session.updated")
    data = clip_pcm24(CLIPS[0], silence_after_s=0.5)
    cut = 4 * 24000 * 2
    texts = []
    for part in (data[:cut], data[cut:]):
        await send_audio(ws, part, speed=4)
        await ws.send_str(json.dumps({"type": "input_audio_buffer.commit"}))
        done = await receive_until(ws, "conversation.item.input_audio_transcription.completed", timeout=120)
        texts.append(done["transcript"])
    assert all(texts), texts
    assert wer(manifest()[CLIPS[0]].transcript, " ".join(texts)) <= 0.15, texts
    await ws.close()


# Clips and the silence after each: a turn over the 15 s an utterance may grow to (cut by length inside the turn),
# a pause shorter than silence_duration_ms (one turn over two clips), pauses just over it and longer.
TURNS = [("en/librispeech/1089-134686-0018.flac", 1.0), ("en/librispeech/1089-134686-0001.flac", 0.3),
         ("en/librispeech/1089-134686-0003.flac", 1.0), ("en/librispeech/1089-134686-0014.flac", 0.6),
         ("en/librispeech/1089-134686-0036.flac", 1.5)]


async def test_server_vad_pairs_every_turn_over_a_multi_utterance_stream(make_client: Any, fw_base: Any) -> None:
    """Raw WebSocket, real model: over a stream of turns of every kind, speech_started and speech_stopped alternate
    (speech_stopped at the turn's endpoint, with its committed), and every item gets exactly one completed;
    together they hold the clips' words."""
    client = await make_client(fw_base)
    ws = await client.ws_connect(PATH, headers={"Authorization": f"Bearer {TOKEN}"})
    await ws.send_str(json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {
        "input": {"transcription": {"language": "en"},
                  "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}}}}))
    await receive_until(ws, "session.updated")
    pieces = [decode_audio((AUDIO_DIR / clip).read_bytes()) for clip, _ in TURNS]
    audio = np.concatenate([part for piece, (_, gap) in zip(pieces, TURNS)
                            for part in (piece, np.zeros(int(gap * SAMPLE_RATE), np.float32))])
    events = await events_until_turns_done(ws, asyncio.create_task(send_audio(ws, pcm24(audio), speed=3)))
    items = check_items(events)
    stops = [e["audio_end_ms"] for e in events if e["type"] == STOPPED]
    assert 4 <= len(items) <= len(TURNS) + 2, list(items.values())
    # On the audio's own timeline, in order, each at the end of its item's speech.
    starts = [e["audio_start_ms"] for e in events if e["type"] == STARTED]
    assert all(a < b for a, b in zip(stops, stops[1:])) and stops[-1] <= len(audio) / SAMPLE_RATE * 1000
    assert all(start < stop for start, stop in zip(starts, stops))
    refs = " ".join(manifest()[clip].transcript for clip, _ in TURNS)
    assert wer(refs, " ".join(items.values())) <= 0.15, list(items.values())
    await ws.close()
